"""OpenAI conformance of `cozy serve`, through the official `openai` SDK (sync and async).

One server for the module, configured like a user pointing cozy at an OpenAI-compatible
upstream (`ai.provider: openai`) with `COZY_MODEL` set. Only the model is fake.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from server_fixtures import ServerThread, make_keys

from cozy.server.app import create_app
from cozy.server.config import ServerSettings
from cozy.settings import Settings
from cozy.testing import FakeModelServer

ENV_MODEL = "env-model"  # what COZY_MODEL names: the server must send this upstream


class Srv:
    def __init__(self, url: str, keys: dict[str, str], fake: FakeModelServer) -> None:
        self.url = url
        self.keys = keys
        self.fake = fake

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key=self.keys["alice"], max_retries=0)

    def aclient(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=self.url + "/v1", api_key=self.keys["alice"], max_retries=0
        )

    def post(self, path: str, content: bytes, content_type: str | None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.keys['alice']}"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        return httpx.post(self.url + path, content=content, headers=headers, timeout=60)


@pytest.fixture(scope="module")
def srv(
    tmp_path_factory: pytest.TempPathFactory, fake_model_session: FakeModelServer
) -> Iterator[Srv]:
    home: Path = tmp_path_factory.mktemp("conformance")
    fake = fake_model_session
    (home / "engines.yaml").write_text(
        "ai:\n  provider: openai\n  model: openai:fake-model\n  providers:\n"
        f"    openai: {{base_url: '{fake.url}/v1', api_key: test-key, max_retries: 0}}\n"
        "knowledge: {provider: none}\nprofile: {provider: none}\nmemory: {provider: none}\n",
        encoding="utf-8",
    )
    settings = Settings(home=home, config=home / "engines.yaml", model=f"openai:{ENV_MODEL}")
    server = ServerSettings(
        rate_limit_rpm=0, rate_limit_tpm=0, ip_rate_limit_rpm=0, auth_cache_seconds=0.0
    )
    keys = make_keys(settings)
    thread = ServerThread(create_app(settings, server)).start()
    try:
        yield Srv(thread.url, keys, fake)
    finally:
        thread.stop()


@pytest.fixture
def s(srv: Srv, fake_model: FakeModelServer) -> Srv:
    return srv  # `fake_model` resets the shared fake (replies, rules, recorded requests)


HI = [{"role": "user", "content": "hi"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def test_n_choices_refusal_and_fingerprint(s: Srv) -> None:
    done = s.client().chat.completions.create(model="cozy", messages=HI, n=3)  # type: ignore[arg-type]
    assert [c.index for c in done.choices] == [0, 1, 2]
    assert all(c.message.content and c.message.refusal is None for c in done.choices)
    assert all(c.finish_reason == "stop" for c in done.choices)
    assert len(s.fake.turn_requests()) == 3  # one upstream call per choice
    assert done.system_fingerprint and done.system_fingerprint.startswith("fp_")
    assert done.usage is not None
    assert done.usage.completion_tokens >= 3 and done.usage.total_tokens > 0
    raw = httpx.post(
        s.url + "/v1/chat/completions",
        json={"model": "cozy", "messages": HI},
        headers={"Authorization": f"Bearer {s.keys['alice']}"},
        timeout=60,
    ).json()
    assert raw["choices"][0]["message"]["refusal"] is None  # present, as null
    assert raw["system_fingerprint"] == done.system_fingerprint  # same cozy + model


async def test_n_choices_streaming_async(s: Srv) -> None:
    c = s.aclient()
    stream = await c.chat.completions.create(
        model="cozy",
        messages=HI,  # type: ignore[arg-type]
        n=2,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [ch async for ch in stream]
    await c.close()
    texts: dict[int, str] = {0: "", 1: ""}
    finished = []
    for ch in chunks:
        for choice in ch.choices:
            texts[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                finished.append(choice.index)
    assert sorted(finished) == [0, 1]
    assert texts[0] and texts[1]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert all(ch.system_fingerprint and ch.system_fingerprint.startswith("fp_") for ch in chunks)


def test_n_on_a_bound_session_is_refused(s: Srv) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        s.client().chat.completions.create(
            model="cozy",
            messages=HI,  # type: ignore[arg-type]
            n=2,
            extra_headers={"X-Cozy-Session": "new"},
        )
    assert exc.value.body["param"] == "n"  # type: ignore[index]


def test_tool_choice_and_parallel_tool_calls_go_upstream(s: Srv) -> None:
    s.client().chat.completions.create(
        model="cozy",
        messages=HI,  # type: ignore[arg-type]
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        parallel_tool_calls=False,
    )
    sent = s.fake.turn_requests()[-1].body
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["parallel_tool_calls"] is False


async def test_tool_choice_required_async_and_unknown_name(s: Srv) -> None:
    c = s.aclient()
    await c.chat.completions.create(
        model="cozy",
        messages=HI,  # type: ignore[arg-type]
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice="required",
    )
    assert s.fake.turn_requests()[-1].body["tool_choice"] == "required"
    with pytest.raises(openai.BadRequestError) as exc:
        await c.chat.completions.create(
            model="cozy",
            messages=HI,  # type: ignore[arg-type]
            tools=[WEATHER],  # type: ignore[list-item]
            tool_choice={"type": "function", "function": {"name": "nope"}},
        )
    assert "get_weather" in str(exc.value)
    await c.close()


def test_cozy_model_is_honoured(s: Srv) -> None:
    done = s.client().chat.completions.create(model="cozy/assistant", messages=HI)  # type: ignore[arg-type]
    assert done.choices[0].message.content
    assert s.fake.turn_requests()[-1].body["model"] == ENV_MODEL
    s.client().chat.completions.create(model="openai:fake-model", messages=HI)  # type: ignore[arg-type]
    assert s.fake.turn_requests()[-1].body["model"] == "fake-model"  # a request's own wins


async def test_unknown_provider_prefix_lists_the_known_ones(s: Srv) -> None:
    for call in (
        lambda: s.client().chat.completions.create(model="zzz:model", messages=HI),  # type: ignore[arg-type]
    ):
        with pytest.raises(openai.NotFoundError) as exc:
            call()
        assert "zzz" in str(exc.value) and "openai:MODEL" in str(exc.value)
    c = s.aclient()
    with pytest.raises(openai.NotFoundError) as aexc:
        await c.chat.completions.create(model="zzz:model", messages=HI, stream=True)  # type: ignore[arg-type]
    assert aexc.value.body["code"] == "model_not_found"  # type: ignore[index]
    await c.close()
    assert not s.fake.turn_requests()  # nothing went upstream


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_tokens", "10"), ("seed", 2**70), ("temperature", "1"), ("stream", 0), ("n", "2")],
)
def test_typed_fields_are_not_coerced(s: Srv, field: str, value: Any) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        s.client().chat.completions.create(
            model="cozy",
            messages=HI,  # type: ignore[arg-type]
            extra_body={field: value},
        )
    assert exc.value.body["type"] == "invalid_request_error"  # type: ignore[index]
    assert exc.value.body["param"] == field  # type: ignore[index]
    assert not s.fake.turn_requests()


def test_deep_json_is_a_400_not_a_500(s: Srv) -> None:
    for path in ("/v1/chat/completions", "/v1/embeddings"):
        deep = b'{"model": "cozy", "messages": ' + b"[" * 1000 + b"]" * 1000 + b"}"
        r = s.post(path, deep, "application/json")
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert err["type"] == "invalid_request_error" and "nested" in err["message"]
    # brackets inside strings are text, not nesting
    ok = json.dumps({"model": "cozy", "messages": [{"role": "user", "content": "[" * 500}]})
    assert s.post("/v1/chat/completions", ok.encode(), "application/json").status_code == 200


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_a_json_endpoint_wants_json(s: Srv, content_type: str | None) -> None:
    body = json.dumps({"model": "cozy", "messages": HI}).encode()
    r = s.post("/v1/chat/completions", body, content_type)
    assert r.status_code == 415, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and "application/json" in err["message"]
    assert not s.fake.turn_requests()
    ok = s.post("/v1/chat/completions", body, "application/json; charset=utf-8")
    assert ok.status_code == 200


def test_embeddings_take_token_arrays(s: Srv) -> None:
    c = s.client()
    text = c.embeddings.create(model="cozy-embed", input="hello world")
    one = c.embeddings.create(model="cozy-embed", input=[7592, 2088])
    many = c.embeddings.create(model="cozy-embed", input=[[7592, 2088], [7592]])
    assert len(one.data) == 1 and len(many.data) == 2
    dims = len(text.data[0].embedding)
    assert len(one.data[0].embedding) == dims == len(many.data[1].embedding)
    assert one.data[0].embedding == pytest.approx(many.data[0].embedding, abs=1e-5)
    assert one.usage.prompt_tokens == 2 and many.usage.prompt_tokens == 3
    with pytest.raises(openai.BadRequestError) as exc:
        c.embeddings.create(model="cozy-embed", input=[10**9])
    assert "vocabulary" in str(exc.value)
    with pytest.raises(openai.BadRequestError):
        c.embeddings.create(model="cozy-embed", input=["a", 1])  # type: ignore[list-item]


async def test_embeddings_token_arrays_async(s: Srv) -> None:
    c = s.aclient()
    out = await c.embeddings.create(model="cozy-embed", input=[[101, 7592, 102]])
    assert len(out.data) == 1 and out.data[0].index == 0
    await c.close()


def _validate(instance: Any, model: Any) -> None:
    """Validate a raw body against the JSON schema of the official SDK's type."""
    import jsonschema

    jsonschema.validate(instance, model.model_json_schema())


def test_bodies_match_the_official_sdk_schemas(s: Srv) -> None:
    from openai.types import CreateEmbeddingResponse, Model
    from openai.types.chat import ChatCompletion, ChatCompletionChunk
    from openai.types.shared import ErrorObject

    h = {"Authorization": f"Bearer {s.keys['alice']}"}
    with httpx.Client(base_url=s.url + "/v1", headers=h, timeout=60) as c:
        body = c.post("/chat/completions", json={"model": "cozy", "messages": HI, "n": 2}).json()
        _validate(body, ChatCompletion)
        assert body["choices"][0]["message"]["refusal"] is None and body["system_fingerprint"]
        stream = c.post(
            "/chat/completions",
            json={
                "model": "cozy",
                "messages": HI,
                "stream": True,
                "stream_options": {"include_usage": True},
            },
        ).text
        chunks = [json.loads(line[6:]) for line in stream.splitlines() if line[6:7] == "{"]
        assert len(chunks) >= 3
        for chunk in chunks:
            _validate(chunk, ChatCompletionChunk)
        models = c.get("/models").json()
        assert models["object"] == "list"
        for m in models["data"]:
            _validate(m, Model)
        _validate(c.post("/embeddings", json={"input": [1, 2]}).json(), CreateEmbeddingResponse)
        for bad in (
            c.post("/chat/completions", json={"model": "cozy"}),
            c.get("/models/nope"),
            c.delete("/chat/completions"),
            httpx.get(s.url + "/v1/models", timeout=60),
        ):
            assert bad.status_code in (400, 401, 404, 405), bad.text
            _validate(bad.json()["error"], ErrorObject)
            assert set(bad.json()["error"]) == {"message", "type", "param", "code"}


def test_405_names_the_allowed_methods(s: Srv) -> None:
    h = {"Authorization": f"Bearer {s.keys['alice']}"}
    r = httpx.put(s.url + "/v1/chat/completions", headers=h, timeout=60)
    assert r.status_code == 405 and sorted(r.headers["allow"].split(", ")) == ["OPTIONS", "POST"]
    assert r.json()["error"]["type"] == "invalid_request_error"
    r = httpx.post(s.url + "/v1/models", headers=h, timeout=60)
    assert r.status_code == 405 and "GET" in r.headers["allow"]
