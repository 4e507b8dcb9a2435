"""OpenAIProvider (plain HTTP over httpx) against the fake model server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import jsonschema
import pytest
from ai_helpers import HI, collect
from pg_redis_helpers import free_port

from cozy.core.errors import (
    ModelAuthError,
    ModelError,
    ModelNotFound,
    ModelRateLimited,
    ModelUnreachableError,
)
from cozy.core.types import GenerationOptions, Message, ToolCall, ToolSpec
from cozy.engines.ai.openai_provider import OpenAIProvider
from cozy.engines.registry import registry
from cozy.testing import FakeModelServer

SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string"}, "score": {"type": "integer", "minimum": 1}},
    "required": ["answer", "score"],
}


@pytest.fixture
async def provider(fake_model: FakeModelServer) -> AsyncIterator[OpenAIProvider]:
    p = OpenAIProvider({"base_url": fake_model.openai_base_url, "api_key": "sk-test"})
    await p.initialize()
    yield p
    await p.close()


def test_registered_by_entry_point() -> None:
    assert registry.get("ai", "openai") is OpenAIProvider
    assert OpenAIProvider.can_stream and OpenAIProvider.supports_tools


async def test_parallel_tool_calls_assembled(
    provider: OpenAIProvider, fake_model: FakeModelServer
) -> None:
    tools = [ToolSpec("web.search", parameters={"type": "object"}), ToolSpec("clock")]
    calls: list[tuple[str, dict[str, Any]]] = [
        ("web__search", {"query": "cozy cats", "limit": 3}),
        ("clock", {"tz": "Europe/Oslo"}),
    ]
    fake_model.queue_reply("Checking.", tool_calls=calls)
    text, final = await collect(provider.chat_stream(HI, model="fake-model", tools=tools))
    assert text == "Checking."
    assert final.finish_reason == "tool_calls"
    assert final.tool_calls is not None
    assert [c.name for c in final.tool_calls] == ["web.search", "clock"]
    assert json.loads(final.tool_calls[0].arguments) == {"query": "cozy cats", "limit": 3}
    assert json.loads(final.tool_calls[1].arguments) == {"tz": "Europe/Oslo"}
    assert [c.index for c in final.tool_calls] == [0, 1]
    assert all(c.id for c in final.tool_calls)
    sent = fake_model.requests[-1]
    assert [t["function"]["name"] for t in sent["tools"]] == ["web__search", "clock"]
    assert sent["stream_options"] == {"include_usage": True}

    fake_model.queue_reply(tool_calls=calls)
    result = await provider.chat(HI, model="fake-model", tools=tools)
    assert [c.name for c in result.tool_calls] == ["web.search", "clock"]
    assert result.finish_reason == "tool_calls"


async def test_tool_history_and_options_sent(
    provider: OpenAIProvider, fake_model: FakeModelServer
) -> None:
    history = [
        Message("system", "be brief"),
        Message("user", "weather?"),
        Message("assistant", "", tool_calls=[ToolCall("c1", "web.get", '{"u": "x"}')]),
        Message("tool", "rain", tool_call_id="c1", name="web.get"),
    ]
    opts = GenerationOptions(temperature=0.2, top_p=0.9, max_tokens=50, stop=["END"], seed=7)
    result = await provider.chat(history, model="fake-model", options=opts)
    assert result.content == "The tool returned: rain"
    sent = fake_model.requests[-1]
    assert sent["messages"][2]["tool_calls"][0]["function"]["name"] == "web__get"
    assert sent["messages"][3]["tool_call_id"] == "c1"
    assert (sent["temperature"], sent["top_p"], sent["max_tokens"]) == (0.2, 0.9, 50)
    assert (sent["stop"], sent["seed"]) == (["END"], 7)


async def test_max_tokens_truncates(provider: OpenAIProvider, fake_model: FakeModelServer) -> None:
    fake_model.queue_reply("one two three four five")
    result = await provider.chat(HI, model="m", options=GenerationOptions(max_tokens=2))
    assert result.content == "one two" and result.finish_reason == "length"


@pytest.mark.parametrize("stream", [False, True])
async def test_structured_output(provider: OpenAIProvider, stream: bool) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "r", "schema": SCHEMA, "strict": True}}
    opts = GenerationOptions(response_format=fmt)
    if stream:
        text, _ = await collect(provider.chat_stream(HI, model="m", options=opts))
    else:
        text = (await provider.chat(HI, model="m", options=opts)).content
    jsonschema.validate(json.loads(text), SCHEMA)


async def test_list_models_and_health(provider: OpenAIProvider) -> None:
    models = await provider.list_models()
    assert [m.id for m in models] == ["fake-model", "fake-embed"]
    assert all(m.provider == "openai" for m in models)
    health = await provider.health_check()
    assert health.ok


async def test_unreachable_server() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    p = OpenAIProvider({"base_url": url, "api_key": "k", "max_retries": 0, "timeout": 5})
    with pytest.raises(ModelUnreachableError) as info:
        await p.chat(HI, model="m")
    assert url in str(info.value) and "base_url" in str(info.value)
    with pytest.raises(ModelUnreachableError):
        await collect(p.chat_stream(HI, model="m"))
    health = await p.health_check()
    assert not health.ok and "base_url" in health.fix
    await p.close()


async def test_missing_and_rejected_key(fake_model: FakeModelServer) -> None:
    p = OpenAIProvider()
    with pytest.raises(ModelAuthError) as info:
        await p.chat(HI, model="m")
    assert "OPENAI_API_KEY" in str(info.value)
    fake_model.api_key = "right"
    p = OpenAIProvider({"base_url": fake_model.openai_base_url, "api_key": "wrong"})
    with pytest.raises(ModelAuthError) as info:
        await p.chat(HI, model="m")
    assert "OPENAI_API_KEY" in str(info.value)
    await p.close()


async def test_env_vars_honoured(
    fake_model: FakeModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", fake_model.openai_base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "env-key")
    fake_model.api_key = "env-key"
    p = OpenAIProvider()
    assert (await p.chat(HI, model="m")).content.startswith("You said")
    await p.close()


async def test_unknown_model(provider: OpenAIProvider, fake_model: FakeModelServer) -> None:
    fake_model.strict_models = True
    with pytest.raises(ModelNotFound) as info:
        await provider.chat(HI, model="gpt-nope")
    assert "gpt-nope" in str(info.value) and "cozy models" in str(info.value)


async def test_500_retried_then_succeeds(fake_model: FakeModelServer) -> None:
    p = OpenAIProvider({"base_url": fake_model.openai_base_url, "api_key": "k", "max_retries": 2})
    fake_model.fail_next(500, retry_after=0.01)
    assert (await p.chat(HI, model="m")).content == "You said: hello there"
    fake_model.fail_next(502, retry_after=0.01)
    text, _ = await collect(p.chat_stream(HI, model="m"))
    assert text == "You said: hello there"
    assert len(fake_model.chat_requests()) == 4
    await p.close()


async def test_500_forever_fails_after_retries(fake_model: FakeModelServer) -> None:
    p = OpenAIProvider({"base_url": fake_model.openai_base_url, "api_key": "k", "max_retries": 2})
    fake_model.fail_next(500, times=100, retry_after=0.01)
    with pytest.raises(ModelError) as info:
        await p.chat(HI, model="m")
    assert "500" in str(info.value)
    assert len(fake_model.chat_requests()) == 3
    fake_model.reset()
    fake_model.fail_next(429, times=100, retry_after=0.01)
    with pytest.raises(ModelRateLimited):
        await p.chat(HI, model="m")
    await p.close()


async def test_dropped_connection_retried(fake_model: FakeModelServer) -> None:
    p = OpenAIProvider({"base_url": fake_model.openai_base_url, "api_key": "k", "max_retries": 1})
    fake_model.fail_next(drop=True)
    assert (await p.chat(HI, model="m")).content == "You said: hello there"
    fake_model.queue_reply("a b c d e f g")
    fake_model.fail_next(drop=True, after_chunks=3)
    seen: list[str] = []
    with pytest.raises(ModelUnreachableError):
        async for chunk in p.chat_stream(HI, model="m"):
            seen.append(chunk.delta)
    assert "".join(seen) and "".join(seen) != "a b c d e f g"
    await p.close()


async def _lines(*lines: str) -> AsyncIterator[str]:
    for line in lines:
        yield line


async def test_sse_reader_joins_data_lines_and_skips_comments() -> None:
    from cozy.engines.ai.openai_http import sse_data as _sse_data

    got = [
        d
        async for d in _sse_data(
            _lines(": keep-alive", "", 'data: {"a":', "data: 1}", "", "event: x", "data:[DONE]")
        )
    ]
    assert got == ['{"a":\n1}', "[DONE]"]
    assert json.loads(got[0]) == {"a": 1}


def test_stream_error_and_garbage_chunks_are_model_errors() -> None:
    from cozy.engines.ai.openai_http import decode_chunk as _decode_chunk

    with pytest.raises(ModelError, match="overloaded"):
        _decode_chunk('{"error": {"message": "overloaded", "type": "server_error"}}', "u")
    with pytest.raises(ModelError, match="not JSON"):
        _decode_chunk("{not json", "u")
    with pytest.raises(ModelError, match="not an object"):
        _decode_chunk("[1, 2]", "u")
    assert _decode_chunk('{"choices": []}', "u") == {"choices": []}
