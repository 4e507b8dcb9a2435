"""The Ollama half of the fake model server: chat, tags, embed, show, version."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from litestar import Request, Response, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.response import Stream

from cozy.testing.script import ChatView, Reply, ServerState, ViewMessage, apply_limits
from cozy.testing.synth import count_tokens, embed_text, split_tokens

VERSION = "0.6.0"
MODIFIED_AT = "2024-01-01T00:00:00Z"
FAMILY = "fake"


def error(status: int, message: str) -> Response[Any]:
    return Response({"error": message}, status_code=status)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def view_from_ollama(body: dict[str, Any]) -> ChatView:
    messages = [
        ViewMessage(
            role=str(m.get("role", "user")),
            content=str(m.get("content") or ""),
            tool_calls=list(m.get("tool_calls") or []),
        )
        for m in body.get("messages") or []
    ]
    tools = [t.get("function", {}).get("name", "") for t in body.get("tools") or []]
    fmt = body.get("format")
    schema: dict[str, Any] | None = None
    if fmt == "json":
        schema = {}
    elif isinstance(fmt, dict):
        schema = fmt
    options = body.get("options") or {}
    stop = options.get("stop") or []
    num_predict = options.get("num_predict")
    return ChatView(
        api="ollama",
        model=str(body.get("model", "")),
        messages=messages,
        tools=tools,
        stream=body.get("stream", True) is not False,
        schema=schema,
        max_tokens=num_predict if isinstance(num_predict, int) and num_predict >= 0 else None,
        stop=[stop] if isinstance(stop, str) else list(stop),
    )


def _tool_calls(reply: Reply) -> list[dict[str, Any]]:
    return [
        {"function": {"index": i, "name": c.name, "arguments": c.arguments}}
        for i, c in enumerate(reply.tool_calls)
    ]


def _details() -> dict[str, Any]:
    return {
        "parent_model": "",
        "format": "gguf",
        "family": FAMILY,
        "families": [FAMILY],
        "parameter_size": "1B",
        "quantization_level": "Q4_0",
    }


def _final(view: ChatView, reply: Reply, text: str, reason: str, started: float) -> dict[str, Any]:
    eval_count = count_tokens(text) + sum(
        count_tokens(f"{c.name} {c.arguments_json}") for c in reply.tool_calls
    )
    total = int((time.monotonic() - started) * 1e9)
    return {
        "done": True,
        "done_reason": "length" if reason == "length" else "stop",
        "total_duration": total,
        "load_duration": 0,
        "prompt_eval_count": view.prompt_tokens,
        "prompt_eval_duration": 0,
        "eval_count": eval_count,
        "eval_duration": total,
    }


def routes(server: ServerState) -> list[HTTPRouteHandler]:
    def missing(model: str) -> Response[Any]:
        return error(404, f'model "{model}" not found, try pulling it first')

    @post("/api/chat", status_code=200)
    async def chat(request: Request[Any, Any, Any]) -> Response[Any]:
        try:
            body = await request.json()
        except ValueError:
            return error(400, "invalid JSON body")
        if not isinstance(body, dict) or not body.get("model"):
            return error(400, "model is required")
        view = view_from_ollama(body)
        if not server.knows_model(view.model):
            return missing(view.model)
        reply = server.script.decide(view)
        started = time.monotonic()
        if view.stream:
            return Stream(_ndjson(server, view, reply, started), media_type="application/x-ndjson")
        text, reason = apply_limits(reply, view)
        await server.first_token_delay()
        await server.token_delay(count_tokens(text))
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if reply.tool_calls:
            message["tool_calls"] = _tool_calls(reply)
        out = {"model": view.model, "created_at": _now(), "message": message}
        return Response({**out, **_final(view, reply, text, reason, started)})

    @get("/api/tags")
    async def tags() -> dict[str, Any]:
        models = []
        for name in server.models:
            digest = hashlib.sha256(name.encode()).hexdigest()
            models.append(
                {
                    "name": name,
                    "model": name,
                    "modified_at": MODIFIED_AT,
                    "size": 1_000_000,
                    "digest": digest,
                    "details": _details(),
                }
            )
        return {"models": models}

    @post("/api/show", status_code=200)
    async def show(request: Request[Any, Any, Any]) -> Response[Any]:
        body = await request.json()
        model = str(body.get("model") or body.get("name") or "")
        if not model or (server.strict_models and not server.knows_model(model)):
            return missing(model)
        info = {
            "general.architecture": FAMILY,
            "general.parameter_count": 1_000_000_000,
            f"{FAMILY}.context_length": server.context_length,
            f"{FAMILY}.embedding_length": server.embedding_dims,
        }
        return Response(
            {
                "modelfile": f"FROM {model}",
                "parameters": "",
                "template": "{{ .Prompt }}",
                "details": _details(),
                "model_info": info,
                "capabilities": ["completion", "tools"]
                + (["vision"] if model.removesuffix(":latest") in server.vision_models else []),
                "modified_at": MODIFIED_AT,
            }
        )

    @post("/api/embed", status_code=200)
    async def embed(request: Request[Any, Any, Any]) -> Response[Any]:
        body = await request.json()
        model = str(body.get("model", ""))
        if not server.knows_model(model):
            return missing(model)
        raw = body.get("input", "")
        texts = [raw] if isinstance(raw, str) else [str(t) for t in raw]
        dims = int(body.get("dimensions") or server.embedding_dims)
        await server.first_token_delay()
        return Response(
            {
                "model": model,
                "embeddings": [embed_text(t, dims) for t in texts],
                "total_duration": 0,
                "load_duration": 0,
                "prompt_eval_count": sum(count_tokens(t) for t in texts),
            }
        )

    @get("/api/version")
    async def version() -> dict[str, str]:
        return {"version": VERSION}

    return [chat, tags, show, embed, version]


async def _ndjson(
    server: ServerState, view: ChatView, reply: Reply, started: float
) -> AsyncIterator[bytes]:
    def line(message: dict[str, Any], **extra: Any) -> bytes:
        out = {"model": view.model, "created_at": _now(), "message": message, "done": False}
        return (json.dumps({**out, **extra}) + "\n").encode()

    text, reason = apply_limits(reply, view)
    await server.first_token_delay()
    for piece in split_tokens(text):
        yield line({"role": "assistant", "content": piece})
        await server.token_delay()
    if reply.tool_calls:
        yield line({"role": "assistant", "content": "", "tool_calls": _tool_calls(reply)})
    yield line({"role": "assistant", "content": ""}, **_final(view, reply, text, reason, started))
