"""What every AI provider must do the same way, run against each one (real SDK, fake server)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from ai_helpers import HI

from cozy.engines.ai.ollama_provider import OllamaProvider
from cozy.engines.ai.openai_provider import OpenAIProvider
from cozy.engines.base import AIEngine
from cozy.testing import FakeModelServer


def _make(name: str, fake: FakeModelServer) -> AIEngine:
    if name == "ollama":
        return OllamaProvider({"host": fake.url, "retry_delay": 0.01})
    return OpenAIProvider({"base_url": fake.openai_base_url, "api_key": "sk-test"})


@pytest.fixture(params=["ollama", "openai"])
async def provider(
    request: pytest.FixtureRequest, fake_model: FakeModelServer
) -> AsyncIterator[AIEngine]:
    p = _make(request.param, fake_model)
    await p.initialize()
    yield p
    await p.close()


async def test_chat_non_streaming(provider: AIEngine) -> None:
    result = await provider.chat(HI, model="fake-model")
    assert result.content == "You said: hello there"
    assert result.finish_reason == "stop"
    assert result.usage is not None
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (2, 4)
    assert result.model == "fake-model"


async def test_stream_text_then_final_chunk(provider: AIEngine) -> None:
    chunks = [c async for c in provider.chat_stream(HI, model="fake-model")]
    assert len([c for c in chunks if c.delta]) == 4
    assert "".join(c.delta for c in chunks) == "You said: hello there"
    final = chunks[-1]
    assert final.finish_reason == "stop" and final.tool_calls is None
    assert final.usage is not None and final.usage.total_tokens == 6


async def test_latency_and_tps_roughly_honoured(
    provider: AIEngine, fake_model: FakeModelServer
) -> None:
    fake_model.latency = 0.2
    fake_model.tokens_per_second = 40
    fake_model.queue_reply(" ".join(["tok"] * 20))
    start = time.monotonic()
    stamps: list[float] = []
    async for chunk in provider.chat_stream(HI, model="m"):
        if chunk.delta:
            stamps.append(time.monotonic() - start)
    assert len(stamps) == 20
    assert stamps[0] >= 0.15
    # measured from the start: a stalled reader (the server shares this process) can get
    # tokens in a bunch, but never sooner than the latency plus 19 tokens' pacing
    assert stamps[-1] >= 0.2 + 19 / 40 * 0.9
