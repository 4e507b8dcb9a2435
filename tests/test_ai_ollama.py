"""OllamaProvider through the real ollama SDK against the fake model server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import jsonschema
import pytest
from ai_helpers import HI, collect
from pg_redis_helpers import free_port

from cozy.core.errors import ModelError, ModelNotFound, ModelUnreachableError
from cozy.core.types import GenerationOptions, Message, ToolCall, ToolSpec
from cozy.engines.ai.ollama_provider import OllamaProvider, normalize_host, to_ollama_format
from cozy.engines.registry import registry
from cozy.testing import FakeModelServer

SCHEMA = {
    "type": "object",
    "properties": {"title": {"type": "string"}, "items": {"type": "array", "minItems": 2}},
    "required": ["title", "items"],
}


def make(fake: FakeModelServer, **opts: object) -> OllamaProvider:
    return OllamaProvider({"host": fake.url, "retry_delay": 0.01, **opts})


@pytest.fixture
async def provider(fake_model: FakeModelServer) -> AsyncIterator[OllamaProvider]:
    p = make(fake_model)
    await p.initialize()
    yield p
    await p.close()


def test_registered_and_host_normalised() -> None:
    assert registry.get("ai", "ollama") is OllamaProvider
    assert normalize_host("localhost") == "http://localhost:11434"
    assert normalize_host("0.0.0.0:8080") == "http://127.0.0.1:8080"
    assert normalize_host("https://ollama.example") == "https://ollama.example:443"
    assert to_ollama_format({"type": "json_object"}) == "json"
    assert to_ollama_format({"type": "json_schema", "json_schema": {"schema": SCHEMA}}) == SCHEMA


async def test_parallel_tool_calls(provider: OllamaProvider, fake_model: FakeModelServer) -> None:
    tools = [ToolSpec("files.read"), ToolSpec("clock")]
    calls = [("files__read", {"path": "/tmp/x"}), ("clock", {})]
    fake_model.queue_reply(tool_calls=calls)
    text, final = await collect(provider.chat_stream(HI, model="fake-model", tools=tools))
    assert text == ""
    assert final.finish_reason == "tool_calls" and final.tool_calls is not None
    assert [(c.id, c.name) for c in final.tool_calls] == [
        ("call_0", "files.read"),
        ("call_1", "clock"),
    ]
    assert json.loads(final.tool_calls[0].arguments) == {"path": "/tmp/x"}
    sent = fake_model.requests[-1]
    assert [t["function"]["name"] for t in sent["tools"]] == ["files__read", "clock"]

    fake_model.queue_reply("ok", tool_calls=calls)
    result = await provider.chat(HI, model="fake-model", tools=tools)
    assert [c.name for c in result.tool_calls] == ["files.read", "clock"]
    assert result.finish_reason == "tool_calls"


async def test_history_and_options_in_ollama_shape(
    provider: OllamaProvider, fake_model: FakeModelServer
) -> None:
    history = [
        Message("user", "read it"),
        Message("assistant", "", tool_calls=[ToolCall("call_0", "files.read", '{"path": "a"}')]),
        Message("tool", "contents!", tool_call_id="call_0"),
    ]
    opts = GenerationOptions(temperature=0.1, top_p=0.5, max_tokens=64, stop=["\n\n"], seed=3)
    result = await provider.chat(history, model="fake-model", options=opts)
    assert result.content == "The tool returned: contents!"
    sent = fake_model.requests[-1]
    call = sent["messages"][1]["tool_calls"][0]["function"]
    assert call == {"name": "files__read", "arguments": {"path": "a"}}
    assert sent["messages"][2]["tool_name"] == "files__read"
    assert sent["options"] == {
        "temperature": 0.1,
        "top_p": 0.5,
        "num_predict": 64,
        "stop": ["\n\n"],
        "seed": 3,
    }


async def test_keep_alive_option(fake_model: FakeModelServer) -> None:
    p = make(fake_model, keep_alive="5m")
    await p.chat(HI, model="fake-model")
    assert fake_model.requests[-1]["keep_alive"] == "5m"
    assert fake_model.requests[-1]["stream"] is False
    await p.close()


@pytest.mark.parametrize("stream", [False, True])
async def test_structured_output(
    provider: OllamaProvider, fake_model: FakeModelServer, stream: bool
) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "r", "schema": SCHEMA}}
    opts = GenerationOptions(response_format=fmt)
    if stream:
        text, _ = await collect(provider.chat_stream(HI, model="m", options=opts))
    else:
        text = (await provider.chat(HI, model="m", options=opts)).content
    jsonschema.validate(json.loads(text), SCHEMA)
    assert fake_model.requests[-1]["format"] == SCHEMA


async def test_list_models_with_context_window(provider: OllamaProvider) -> None:
    models = await provider.list_models()
    assert [m.id for m in models] == ["fake-model", "fake-embed"]
    assert all(m.context_window == 8192 and m.provider == "ollama" for m in models)
    assert models[0].details["family"] == "fake"
    health = await provider.health_check()
    assert health.ok and "0.6.0" in health.detail


async def test_unreachable_names_the_fix() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    p = OllamaProvider({"host": url, "max_retries": 1, "retry_delay": 0.01})
    with pytest.raises(ModelUnreachableError) as info:
        await p.chat(HI, model="m")
    assert f"Ollama is not reachable at {url}" in str(info.value)
    assert "ollama serve" in str(info.value) and "OLLAMA_HOST" in str(info.value)
    with pytest.raises(ModelUnreachableError):
        await collect(p.chat_stream(HI, model="m"))
    health = await p.health_check()
    assert not health.ok and "ollama serve" in health.fix
    await p.close()


async def test_ollama_host_env(
    fake_model: FakeModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", fake_model.url)
    p = OllamaProvider()
    assert p.host == fake_model.url
    assert (await p.chat(HI, model="m")).content.startswith("You said")
    await p.close()
    assert OllamaProvider({"host": "http://elsewhere:1"}).host == "http://elsewhere:1"


async def test_unknown_model(provider: OllamaProvider, fake_model: FakeModelServer) -> None:
    fake_model.strict_models = True
    with pytest.raises(ModelNotFound) as info:
        await provider.chat(HI, model="llama9")
    assert "ollama pull llama9" in str(info.value) and "cozy models" in str(info.value)
    with pytest.raises(ModelNotFound):
        await collect(provider.chat_stream(HI, model="llama9"))


async def test_500_retried_then_succeeds(
    provider: OllamaProvider, fake_model: FakeModelServer
) -> None:
    fake_model.fail_next(500)
    assert (await provider.chat(HI, model="m")).content == "You said: hello there"
    fake_model.fail_next(503)
    text, _ = await collect(provider.chat_stream(HI, model="m"))
    assert text == "You said: hello there"
    fake_model.fail_next(drop=True)
    assert (await provider.chat(HI, model="m")).content == "You said: hello there"
    assert len(fake_model.chat_requests()) == 6


async def test_500_forever_fails_after_retries(fake_model: FakeModelServer) -> None:
    p = make(fake_model, max_retries=2)
    fake_model.fail_next(500, times=100, message="boom")
    with pytest.raises(ModelError) as info:
        await p.chat(HI, model="m")
    assert "500" in str(info.value) and "boom" in str(info.value)
    assert len(fake_model.chat_requests()) == 3
    await p.close()


async def test_no_retry_after_text_was_yielded(
    provider: OllamaProvider, fake_model: FakeModelServer
) -> None:
    fake_model.queue_reply("a b c d e f g")
    fake_model.fail_next(drop=True, after_chunks=3)
    seen: list[str] = []
    with pytest.raises(ModelUnreachableError):
        async for chunk in provider.chat_stream(HI, model="m"):
            seen.append(chunk.delta)
    assert seen and "".join(seen) != "a b c d e f g"
    assert len(fake_model.chat_requests()) == 1
