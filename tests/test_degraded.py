"""An answer built without part of its context says so to HTTP clients: the
`X-Cozy-Degraded` header and a `cozy` field the OpenAI SDK keeps (`model_extra`)."""

from __future__ import annotations

from pathlib import Path

import openai
from server_fixtures import start_server

from cozy.testing import FakeModelServer

# a memory engine given no time at all: every answer is built without memories
STARVED = "memory: {provider: local, timeout: 0.000001}\n"


def test_degraded_context_is_visible_to_clients(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    thread, served = start_server(cozy_home, fake_model, STARVED)
    try:
        key = served.keys["alice"]
        client = openai.OpenAI(base_url=served.base_url, api_key=key, max_retries=0)
        msgs = [{"role": "user", "content": "hello"}]
        raw = client.chat.completions.with_raw_response.create(model="cozy", messages=msgs)  # type: ignore[arg-type]
        assert "memory" in raw.headers["x-cozy-degraded"].split(",")
        extra = raw.parse().model_extra or {}
        assert "memory" in extra["cozy"]["degraded"]
        assert any("memory" in r and "timed out" in r for r in extra["cozy"]["degrade_reasons"])
        chunks = list(client.chat.completions.create(model="cozy", messages=msgs, stream=True))  # type: ignore[arg-type]
        last = [c for c in chunks if c.choices and c.choices[0].finish_reason][-1]
        assert "memory" in (last.model_extra or {})["cozy"]["degraded"]
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finally:
        thread.stop()
    # not degraded: no header, no field
    thread, served = start_server(cozy_home, fake_model, "memory: {provider: none}\n")
    try:
        client = openai.OpenAI(base_url=served.base_url, api_key=served.keys["alice"])
        raw = client.chat.completions.with_raw_response.create(
            model="cozy",
            messages=[{"role": "user", "content": "hi"}],  # type: ignore[list-item]
        )
        assert "x-cozy-degraded" not in raw.headers
        assert "cozy" not in (raw.parse().model_extra or {})
    finally:
        thread.stop()
