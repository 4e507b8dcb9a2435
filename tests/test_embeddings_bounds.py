"""/v1/embeddings is bounded: inputs and tokens per request, time per request, and the
work stops when the client goes. The embedder is the OpenAI-compatible provider against
the fake model server, slowed down so that a request has time to be abandoned."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from server_fixtures import Served, start_server

from cozy.testing import FakeModelServer

EMBED = "embed: {provider: openai, base_url: '%s', model: fake-embed, api_key: k}\n"


@pytest.fixture
def slow_embeds(cozy_home: Path, fake_model: FakeModelServer) -> Iterator[Served]:
    thread, served = start_server(
        cozy_home,
        fake_model,
        EMBED % fake_model.openai_base_url,
        embed_max_inputs=1000,
        embed_max_tokens=5000,
        embed_timeout=3.0,
    )
    try:
        # the first call imports the SDK (seconds on a loaded box): not what is measured
        httpx.post(
            served.base_url + "/embeddings",
            headers=served.headers(),
            json={"input": "warm"},
            timeout=60,
        )
        yield served
    finally:
        thread.stop()


def _embed_calls(fake: FakeModelServer) -> int:
    return sum(1 for r in fake.requests if r.path == "/v1/embeddings")


def test_inputs_and_tokens_are_bounded(slow_embeds: Served) -> None:
    url, headers = slow_embeds.base_url + "/embeddings", slow_embeds.headers()
    res = httpx.post(url, headers=headers, json={"input": ["x"] * 1001}, timeout=30)
    assert res.status_code == 400 and "1,001 inputs" in res.text, res.text
    res = httpx.post(url, headers=headers, json={"input": "word " * 6000}, timeout=30)
    assert res.status_code == 400 and "tokens" in res.json()["error"]["message"], res.text
    res = httpx.post(url, headers=headers, json={"input": ["fine", "too"]}, timeout=30)
    assert res.status_code == 200 and len(res.json()["data"]) == 2, res.text


def test_deadline_and_client_leaving_stop_the_work(
    slow_embeds: Served, fake_model: FakeModelServer
) -> None:
    url, headers = slow_embeds.base_url + "/embeddings", slow_embeds.headers()
    fake_model.latency = 0.4  # each batch of 32 inputs: 0.4 s upstream
    body = {"input": [f"text number {i}" for i in range(900)]}  # 29 batches: ~12 s
    started = time.monotonic()
    res = httpx.post(url, headers=headers, json=body, timeout=60)
    took = time.monotonic() - started
    assert res.status_code == 504, res.text
    assert "took longer than 3s" in res.json()["error"]["message"]
    assert took < 3 + 3, took
    # a client that gives up after 1 s: the server stops embedding within a batch or two
    fake_model.requests.clear()
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(url, headers=headers, json=body, timeout=1.0)
    time.sleep(0.5)
    calls_then = _embed_calls(fake_model)
    time.sleep(2.0)
    assert _embed_calls(fake_model) <= calls_then + 1, (calls_then, _embed_calls(fake_model))
    assert calls_then <= 6, calls_then  # ~1.5 s of 0.4 s batches, not all 29
