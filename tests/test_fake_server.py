"""The fake model server speaks the real protocols: checked with raw HTTP and the SDKs."""

from __future__ import annotations

import base64
import json
import math
import struct
import subprocess
import sys
import time
from typing import Any

import httpx
import jsonschema
import ollama
import openai
import pytest

from cozy.testing import FakeModelServer
from cozy.testing.synth import synthesize

USER = [{"role": "user", "content": "hello there friend"}]


def sse_events(resp: httpx.Response) -> list[Any]:
    out: list[Any] = []
    for line in resp.iter_lines():
        if line.startswith("data: "):
            data = line[len("data: ") :]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def test_default_reply_is_deterministic(fake_model: FakeModelServer) -> None:
    body = {"model": "fake-model", "messages": USER}
    first = httpx.post(fake_model.openai_base_url + "/chat/completions", json=body).json()
    second = httpx.post(fake_model.openai_base_url + "/chat/completions", json=body).json()
    assert first["choices"][0]["message"]["content"] == "You said: hello there friend"
    assert first["choices"] == second["choices"]
    assert first["usage"] == {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}
    assert fake_model.requests[-1]["messages"] == USER
    assert fake_model.requests[-1].path == "/v1/chat/completions"


def test_openai_stream_with_usage_and_interleaved_tool_deltas(fake_model: FakeModelServer) -> None:
    fake_model.queue_reply(
        "Let me check.", tool_calls=[("weather", {"city": "Paris"}), ("time", {"tz": "UTC"})]
    )
    body = {
        "model": "fake-model",
        "messages": USER,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with httpx.stream("POST", fake_model.openai_base_url + "/chat/completions", json=body) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r)
    assert events[-1] == "[DONE]"
    usage_chunk = events[-2]
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["prompt_tokens"] == 3
    deltas = [e["choices"][0]["delta"] for e in events[:-2]]
    text = "".join(d.get("content") or "" for d in deltas)
    assert text == "Let me check."
    parts: dict[int, list[str]] = {}
    for d in deltas:
        for tc in d.get("tool_calls", []):
            parts.setdefault(tc["index"], []).append(tc["function"].get("arguments", ""))
    assert all(len(p) >= 3 for p in parts.values())  # arguments really are split
    assert json.loads("".join(parts[0])) == {"city": "Paris"}
    assert json.loads("".join(parts[1])) == {"tz": "UTC"}
    assert events[-3]["choices"][0]["finish_reason"] == "tool_calls"


def test_ollama_ndjson_stream(fake_model: FakeModelServer) -> None:
    fake_model.queue_reply("one two three", tool_calls=[("lookup", {"q": "x"})])
    body = {"model": "fake-model", "messages": USER}
    with httpx.stream("POST", fake_model.url + "/api/chat", json=body) as r:
        lines = [json.loads(line) for line in r.iter_lines() if line]
    assert "".join(x["message"]["content"] for x in lines) == "one two three"
    assert [x["done"] for x in lines].count(True) == 1 and lines[-1]["done"]
    calls = [c for x in lines for c in x["message"].get("tool_calls", [])]
    assert calls[0]["function"] == {"index": 0, "name": "lookup", "arguments": {"q": "x"}}
    assert lines[-1]["prompt_eval_count"] == 3 and lines[-1]["eval_count"] > 3
    assert lines[-1]["done_reason"] == "stop"


def test_rules_and_tool_result_template(fake_model: FakeModelServer) -> None:
    fake_model.add_rule(user_contains="weather", tool_calls=[("get_weather", {"city": "Oslo"})])
    fake_model.add_rule(after_tool=True, text="It is {tool_result}.")
    url = fake_model.openai_base_url + "/chat/completions"
    msgs: list[dict[str, Any]] = [{"role": "user", "content": "What's the WEATHER?"}]
    first = httpx.post(url, json={"model": "m", "messages": msgs}).json()["choices"][0]
    assert first["finish_reason"] == "tool_calls"
    call = first["message"]["tool_calls"][0]
    msgs += [first["message"], {"role": "tool", "tool_call_id": call["id"], "content": "sunny"}]
    second = httpx.post(url, json={"model": "m", "messages": msgs}).json()["choices"][0]
    assert second["message"]["content"] == "It is sunny."
    other = httpx.post(url, json={"model": "m", "messages": USER}).json()["choices"][0]
    assert other["message"]["content"] == "You said: hello there friend"


def test_background_jobs_never_take_a_queued_turn_reply(fake_model: FakeModelServer) -> None:
    """The job worker shares the model: a job asking between two turns leaves the
    reply queued for the next turn in place, and still sees the rules."""
    fake_model.queue_reply("the next turn's answer")
    fake_model.add_rule(user_contains="Conversation", text="job answer from a rule")
    url = fake_model.openai_base_url + "/chat/completions"
    job = [
        {"role": "system", "content": "You maintain a long-term memory of durable facts."},
        {"role": "user", "content": "Conversation: I live in Oslo."},
    ]
    for api_url, body in (
        (url, {"model": "m", "messages": job}),
        (fake_model.url + "/api/chat", {"model": "m", "messages": job, "stream": False}),
    ):
        got = httpx.post(api_url, json=body).json()
        text = got["choices"][0]["message"]["content"] if "choices" in got else got["message"]
        assert "job answer from a rule" in str(text)
    turn = httpx.post(url, json={"model": "m", "messages": USER}).json()["choices"][0]
    assert turn["message"]["content"] == "the next turn's answer"
    assert len(fake_model.chat_requests()) == 3 and len(fake_model.turn_requests()) == 1


@pytest.mark.parametrize(
    "schema",
    [
        {
            "type": "object",
            "properties": {
                "name": {"type": "string", "minLength": 3},
                "age": {"type": "integer", "minimum": 18, "maximum": 99},
                "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
                "kind": {"enum": ["a", "b"]},
                "when": {"type": "string", "format": "date"},
                "nested": {"$ref": "#/$defs/N"},
                "maybe": {"anyOf": [{"type": "null"}, {"type": "number", "exclusiveMinimum": 5}]},
            },
            "required": ["name", "age", "tags", "kind", "nested"],
            "additionalProperties": False,
            "$defs": {"N": {"type": "object", "properties": {"ok": {"type": "boolean"}}}},
        },
        {"type": "array", "items": {"type": "integer", "multipleOf": 7, "minimum": 10}},
    ],
)
def test_synthesized_json_validates(schema: dict[str, Any]) -> None:
    jsonschema.validate(synthesize(schema), schema)


def test_structured_output_both_apis(fake_model: FakeModelServer) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "temp": {"type": "number"}},
        "required": ["city", "temp"],
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "w", "schema": schema}}
    url = fake_model.openai_base_url + "/chat/completions"
    out = httpx.post(url, json={"model": "m", "messages": USER, "response_format": fmt}).json()
    jsonschema.validate(json.loads(out["choices"][0]["message"]["content"]), schema)
    fake_model.queue_reply(json={"city": "Rome", "temp": 21.5})
    body = {"model": "m", "messages": USER, "format": schema, "stream": False}
    out = httpx.post(fake_model.url + "/api/chat", json=body).json()
    assert json.loads(out["message"]["content"]) == {"city": "Rome", "temp": 21.5}
    fake_model.queue_reply(json={"city": 3})  # invalid: synthesised instead
    out = httpx.post(fake_model.url + "/api/chat", json=body).json()
    jsonschema.validate(json.loads(out["message"]["content"]), schema)
    body["format"] = "json"
    out = httpx.post(fake_model.url + "/api/chat", json=body).json()
    assert isinstance(json.loads(out["message"]["content"]), dict)


def test_embeddings_through_openai_sdk(fake_model: FakeModelServer) -> None:
    client = openai.OpenAI(base_url=fake_model.openai_base_url, api_key="k")
    resp = client.embeddings.create(
        model="fake-embed", input=["red apple", "red apple", "blue car"]
    )
    vecs = [d.embedding for d in resp.data]  # the SDK asked for base64 and decoded it
    assert len(vecs[0]) == 384 and vecs[0] == vecs[1]
    assert math.isclose(sum(v * v for v in vecs[0]), 1.0, rel_tol=1e-4)
    assert vecs[0] != vecs[2]
    raw = fake_model.requests[-1]
    assert raw["encoding_format"] == "base64"
    small = client.embeddings.create(
        model="fake-embed", input="x", dimensions=8, encoding_format="float"
    )
    assert len(small.data[0].embedding) == 8
    body = {"model": "fake-embed", "input": "red apple", "encoding_format": "base64"}
    b64 = httpx.post(fake_model.openai_base_url + "/embeddings", json=body).json()
    decoded = struct.unpack("<384f", base64.b64decode(b64["data"][0]["embedding"]))
    assert all(math.isclose(a, b, abs_tol=1e-6) for a, b in zip(decoded, vecs[0], strict=True))


def test_ollama_sdk_endpoints(fake_model: FakeModelServer) -> None:
    client = ollama.Client(host=fake_model.url)
    assert [m.model for m in client.list().models] == ["fake-model", "fake-embed"]
    info = client.show("fake-model")
    assert info.modelinfo is not None and info.modelinfo["fake.context_length"] == 8192
    emb = client.embed(model="fake-embed", input=["a b", "c"])
    assert len(emb.embeddings) == 2 and len(emb.embeddings[0]) == 384
    assert httpx.get(fake_model.url + "/api/version").json()["version"]
    assert openai.OpenAI(base_url=fake_model.openai_base_url, api_key="k").models.list().data


def test_errors_and_failure_injection(fake_model: FakeModelServer) -> None:
    url = fake_model.openai_base_url + "/chat/completions"
    fake_model.fail_next(429, times=2, retry_after=0.01)
    for _ in range(2):
        r = httpx.post(url, json={"model": "m", "messages": USER})
        assert r.status_code == 429 and r.headers["retry-after-ms"] == "10"
        assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    assert httpx.post(url, json={"model": "m", "messages": USER}).status_code == 200
    fake_model.fail_next(503, path="/api/")
    assert httpx.post(url, json={"model": "m", "messages": USER}).status_code == 200
    r = httpx.post(fake_model.url + "/api/chat", json={"model": "m", "messages": USER})
    assert r.status_code == 503 and "error" in r.json()
    fake_model.strict_models = True
    r = httpx.post(url, json={"model": "nope", "messages": USER})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    fake_model.api_key = "secret"
    assert httpx.post(url, json={"model": "fake-model", "messages": USER}).status_code == 401
    fake_model.fail_next(drop=True)
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(fake_model.url + "/api/tags")
    assert httpx.post(url, json={"model": "m", "messages": []}).status_code in (400, 401)


def test_drop_mid_stream(fake_model: FakeModelServer) -> None:
    fake_model.queue_reply("a b c d e f")
    fake_model.fail_next(drop=True, after_chunks=2)
    got: list[str] = []
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream(
            "POST", fake_model.url + "/api/chat", json={"model": "m", "messages": USER}
        ) as r,
    ):
        got.extend(r.iter_lines())
    assert 1 <= len([g for g in got if g]) <= 2


def test_latency_and_tokens_per_second(fake_model: FakeModelServer) -> None:
    fake_model.latency = 0.3
    fake_model.tokens_per_second = 50
    fake_model.queue_reply(" ".join(["word"] * 20))
    body = {"model": "m", "messages": USER, "stream": True}
    start = time.monotonic()
    with httpx.stream("POST", fake_model.openai_base_url + "/chat/completions", json=body) as r:
        lines = r.iter_lines()
        next(lines)
        first = time.monotonic() - start
        list(lines)
    total = time.monotonic() - start
    assert first >= 0.25
    assert total >= 0.25 + 20 / 50 * 0.8
    fake_model.reset()
    assert fake_model.latency == 0.0 and fake_model.requests == []


def test_standalone_module(tmp_path: Any) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "cozy.testing", "--port", str(port), "--latency", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/api/version", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert r.status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
