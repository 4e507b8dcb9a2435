"""Model-call deadlines against a real silent upstream (the fake server holding its
connections open): the error comes within `ai.timeout` with retries included, a
stream that goes quiet ends with an error within `ai.idle_timeout`, and the
partial answer is stored."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from ai_helpers import HI, collect
from helpers import collect as collect_events
from helpers import req, write_engines

from cozy.core.errors import ModelUnreachableError
from cozy.core.events import Failed, TextDelta
from cozy.engines.ai.ollama_provider import OllamaProvider
from cozy.engines.ai.openai_provider import OpenAIProvider
from cozy.engines.base import AIEngine
from cozy.runtime import Runtime
from cozy.settings import Settings
from cozy.testing import FakeModelServer

# Generous slack: the bound is what matters (before: 3 x timeout), not a stopwatch.
SLACK = 3.0


def _provider(kind: str, fake: FakeModelServer, **opts: Any) -> AIEngine:
    if kind == "openai":
        return OpenAIProvider({"base_url": fake.openai_base_url, "api_key": "k", **opts})
    return OllamaProvider({"host": fake.url, "retry_delay": 0.05, **opts})


@pytest.mark.parametrize("kind", ["openai", "ollama"])
async def test_silent_upstream_errors_within_timeout_retries_included(
    kind: str, fake_model: FakeModelServer
) -> None:
    # the server accepts and never sends headers, on every attempt
    fake_model.fail_next(hang=True, times=10, path="chat")
    provider = _provider(kind, fake_model, timeout=1.5, max_retries=2)
    await provider.initialize()
    try:
        started = time.monotonic()
        with pytest.raises(ModelUnreachableError) as err:
            await collect(provider.chat_stream(HI, model="fake-model"))
        took = time.monotonic() - started
        with pytest.raises(ModelUnreachableError):
            await provider.chat(HI, model="fake-model")
    finally:
        await provider.close()
    assert 1.4 <= took < 1.5 + SLACK, took
    assert "did not answer within 1.5s" in err.value.message
    assert "retries included" in err.value.message
    assert "ai.timeout" in (err.value.hint or "")


@pytest.mark.parametrize("kind", ["openai", "ollama"])
async def test_stream_that_goes_quiet_ends_within_idle_timeout(
    kind: str, fake_model: FakeModelServer
) -> None:
    fake_model.queue_reply("one two three four five six seven eight nine ten")
    fake_model.tokens_per_second = 200
    # headers and two body chunks, then silence with the connection open
    fake_model.fail_next(hang=True, after_chunks=3, path="chat")
    provider = _provider(kind, fake_model, timeout=30, idle_timeout=1.0, max_retries=2)
    await provider.initialize()
    text = ""
    started = time.monotonic()
    try:
        with pytest.raises(ModelUnreachableError) as err:
            async for chunk in provider.chat_stream(HI, model="fake-model"):
                text += chunk.delta
    finally:
        await provider.close()
    took = time.monotonic() - started
    assert text, "the chunks before the silence reach the caller"
    assert took < 1.0 + SLACK, took
    assert "stopped sending" in err.value.message
    assert len(fake_model.chat_requests()) == 1  # never retried once text arrived


async def test_quiet_stream_saves_partial_answer_and_reports(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    path = write_engines(cozy_home, fake_model.url)
    path.write_text(path.read_text().replace("ai:\n", "ai:\n  idle_timeout: 1\n", 1))
    rt = await Runtime.open(Settings(home=cozy_home))
    try:
        fake_model.queue_reply("alpha beta gamma delta epsilon zeta eta theta")
        fake_model.tokens_per_second = 200
        fake_model.fail_next(hang=True, after_chunks=3, path="/api/chat")
        started = time.monotonic()
        events = await collect_events(rt.orchestrator.run(req("tell me")))
        took = time.monotonic() - started
        failed = events[-1]
        assert isinstance(failed, Failed), events
        assert "stopped sending" in failed.error["message"]
        partial = "".join(e.text for e in events if isinstance(e, TextDelta))
        assert partial
        assert took < 1.0 + SLACK + 2, took
        rows = await rt.store.list_messages(failed.session_id or "")
        assert [(r.role, r.status) for r in rows] == [("user", "complete"), ("assistant", "failed")]
        assert rows[1].content == partial
    finally:
        await rt.close()
