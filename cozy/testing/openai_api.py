"""The OpenAI half of the fake model server: chat completions, models, embeddings."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

from litestar import Request, Response, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.response import Stream

from cozy.testing.script import ChatView, Reply, ServerState, ViewMessage, apply_limits
from cozy.testing.synth import count_tokens, embed_text, encode_base64, split_even, split_tokens

_ids = itertools.count(1)
CREATED = 1_700_000_000


def error(
    status: int, message: str, code: str | None = None, param: str | None = None
) -> Response[Any]:
    kind = {401: "invalid_request_error", 404: "invalid_request_error", 429: "requests"}.get(
        status, "invalid_request_error" if status < 500 else "server_error"
    )
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return Response(body, status_code=status)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def view_from_openai(body: dict[str, Any]) -> ChatView:
    messages = [
        ViewMessage(
            role=str(m.get("role", "user")),
            content=_text(m.get("content")),
            tool_calls=list(m.get("tool_calls") or []),
        )
        for m in body.get("messages", [])
    ]
    tools = [t.get("function", {}).get("name", "") for t in body.get("tools") or []]
    schema: dict[str, Any] | None = None
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        schema = dict(fmt.get("json_schema", {}).get("schema") or {})
    elif fmt.get("type") == "json_object":
        schema = {}
    stop = body.get("stop") or []
    return ChatView(
        api="openai",
        model=str(body.get("model", "")),
        messages=messages,
        tools=tools,
        stream=bool(body.get("stream")),
        schema=schema,
        max_tokens=body.get("max_completion_tokens") or body.get("max_tokens"),
        stop=[stop] if isinstance(stop, str) else list(stop),
    )


def _completion_tokens(text: str, reply: Reply) -> int:
    calls = sum(count_tokens(f"{c.name} {c.arguments_json}") for c in reply.tool_calls)
    return count_tokens(text) + calls


def _usage(view: ChatView, completion: int) -> dict[str, int]:
    prompt = view.prompt_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _tool_calls(reply: Reply, rid: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"call_{rid}_{i}",
            "type": "function",
            "function": {"name": c.name, "arguments": c.arguments_json},
        }
        for i, c in enumerate(reply.tool_calls)
    ]


def routes(server: ServerState) -> list[HTTPRouteHandler]:
    @post("/v1/chat/completions", status_code=200)
    async def chat_completions(request: Request[Any, Any, Any]) -> Response[Any]:
        try:
            body = await request.json()
        except ValueError:
            return error(400, "We could not parse the JSON body of your request.")
        if not isinstance(body, dict) or not body.get("messages"):
            return error(400, "'messages' is a required property", param="messages")
        view = view_from_openai(body)
        if not server.knows_model(view.model):
            return error(
                404,
                f"The model `{view.model}` does not exist or you do not have access to it.",
                code="model_not_found",
            )
        reply = server.script.decide(view)
        rid = next(_ids)
        if view.stream:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            stream = _sse(server, view, reply, rid, include_usage)
            return Stream(stream, media_type="text/event-stream")
        text, reason = apply_limits(reply, view)
        completion = _completion_tokens(text, reply)
        await server.first_token_delay()
        await server.token_delay(completion)
        message: dict[str, Any] = {"role": "assistant", "content": text or None, "refusal": None}
        if reply.tool_calls:
            message["tool_calls"] = _tool_calls(reply, rid)
        return Response(
            {
                "id": f"chatcmpl-fake{rid}",
                "object": "chat.completion",
                "created": CREATED,
                "model": view.model,
                "system_fingerprint": "fp_fake",
                "choices": [
                    {"index": 0, "message": message, "logprobs": None, "finish_reason": reason}
                ],
                "usage": _usage(view, completion),
            }
        )

    @get("/v1/models")
    async def list_models() -> dict[str, Any]:
        data = [{**_model(m), **server.model_meta} for m in server.models]
        return {"object": "list", "data": data}

    @get("/v1/models/{model_id:str}")
    async def get_model(request: Request[Any, Any, Any]) -> Response[Any]:
        model_id = str(request.path_params["model_id"])
        if model_id not in server.models and server.strict_models:
            return error(404, f"The model `{model_id}` does not exist.", code="model_not_found")
        return Response({**_model(model_id), **server.model_meta})

    @post("/v1/embeddings", status_code=200)
    async def embeddings(request: Request[Any, Any, Any]) -> Response[Any]:
        try:
            body = await request.json()
        except ValueError:
            return error(400, "We could not parse the JSON body of your request.")
        raw = body.get("input") if isinstance(body, dict) else None
        if raw is None or raw == "" or raw == []:
            return error(400, "'input' is a required property", param="input")
        model = str(body.get("model", ""))
        if not server.knows_model(model):
            return error(404, f"The model `{model}` does not exist.", code="model_not_found")
        texts = _embedding_inputs(raw)
        dims = int(body.get("dimensions") or server.embedding_dims)
        await server.first_token_delay()
        base64 = body.get("encoding_format") == "base64"
        data = []
        for i, text in enumerate(texts):
            vec = embed_text(text, dims)
            data.append(
                {
                    "object": "embedding",
                    "index": i,
                    "embedding": encode_base64(vec) if base64 else vec,
                }
            )
        tokens = sum(count_tokens(t) for t in texts)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return Response({"object": "list", "data": data, "model": model, "usage": usage})

    return [chat_completions, list_models, get_model, embeddings]


def _model(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": CREATED, "owned_by": "cozy-fake"}


def _embedding_inputs(raw: Any) -> list[str]:
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and raw and all(isinstance(x, int) for x in raw):
        return [" ".join(str(x) for x in raw)]
    out: list[str] = []
    for item in raw if isinstance(raw, list) else [raw]:
        out.append(" ".join(str(x) for x in item) if isinstance(item, list) else str(item))
    return out


async def _sse(
    server: ServerState, view: ChatView, reply: Reply, rid: int, include_usage: bool
) -> AsyncIterator[bytes]:
    base = {
        "id": f"chatcmpl-fake{rid}",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": view.model,
        "system_fingerprint": "fp_fake",
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        data: dict[str, Any] = {**base, "choices": [choice]}
        if include_usage:
            data["usage"] = None
        return f"data: {json.dumps(data)}\n\n".encode()

    text, reason = apply_limits(reply, view)
    await server.first_token_delay()
    yield chunk({"role": "assistant", "content": "", "refusal": None})
    for piece in split_tokens(text):
        await server.token_delay()
        yield chunk({"content": piece})
    calls = _tool_calls(reply, rid)
    pieces = [split_even(c["function"]["arguments"], 3) for c in calls]
    for i, call in enumerate(calls):
        header = {
            "id": call["id"],
            "type": "function",
            "function": {"name": call["function"]["name"], "arguments": ""},
        }
        yield chunk({"tool_calls": [{"index": i, **header}]})
    for round_ in range(max((len(p) for p in pieces), default=0)):
        for i, parts in enumerate(pieces):
            if round_ < len(parts):
                await server.token_delay()
                yield chunk(
                    {"tool_calls": [{"index": i, "function": {"arguments": parts[round_]}}]}
                )
    yield chunk({}, reason)
    if include_usage:
        usage = _usage(view, _completion_tokens(text, reply))
        yield f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n".encode()
    yield b"data: [DONE]\n\n"
