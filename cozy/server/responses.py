"""Response types of the OpenAI routes and the error body every route shares.

The handlers build these Structs and the OpenAPI document is generated from the same
types (`document()` adds the error statuses every operation can answer), so the
published schema and the bodies cannot drift apart. Field sets follow the official
OpenAI API reference for the objects cozy returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import msgspec
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, Operation, Reference, Schema
from litestar.openapi.spec.enums import OpenAPIFormat, OpenAPIType

# --- errors ---------------------------------------------------------------------


class ErrorDetail(msgspec.Struct, kw_only=True):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(msgspec.Struct, kw_only=True):
    error: ErrorDetail


# --- chat -----------------------------------------------------------------------


class FunctionCallOut(msgspec.Struct, kw_only=True):
    name: str
    arguments: str


class ToolCallOut(msgspec.Struct, kw_only=True):
    id: str
    type: Literal["function"]
    function: FunctionCallOut


class ChatMessageOut(msgspec.Struct, kw_only=True):
    role: Literal["assistant"]
    content: str | None
    refusal: None  # sent as null: cozy passes no refusals through
    tool_calls: list[ToolCallOut] | msgspec.UnsetType = msgspec.UNSET  # absent when none


class Choice(msgspec.Struct, kw_only=True):
    index: int
    message: ChatMessageOut
    finish_reason: Literal["stop", "length", "tool_calls", "content_filter"]
    logprobs: None = None


class CompletionUsage(msgspec.Struct, kw_only=True):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[Choice]
    usage: CompletionUsage
    system_fingerprint: str
    # only on an answer built without part of its context: {"degraded": [engine names],
    # "degrade_reasons": [...]}; the OpenAI SDK keeps it in `model_extra`
    cozy: dict[str, Any] | None = None


# --- models, embeddings ---------------------------------------------------------


class ModelObject(msgspec.Struct, kw_only=True):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(msgspec.Struct, kw_only=True):
    object: Literal["list"]
    data: list[ModelObject]


class EmbeddingObject(msgspec.Struct, kw_only=True):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str  # floats, or base64 of little-endian float32


class EmbeddingUsage(msgspec.Struct, kw_only=True):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(msgspec.Struct, kw_only=True):
    object: Literal["list"]
    data: list[EmbeddingObject]
    model: str
    usage: EmbeddingUsage


# --- the OpenAPI document -------------------------------------------------------

_ERRORS = {
    400: "The request is malformed (body, parameters); `error.param` names the field",
    401: "No, an unknown, revoked or expired key or token, or a disabled user",
    403: "The caller's role may not do this",
    404: "No such route, model, session or resource (or another user's)",
    413: "The body is larger than COZY_SERVER_MAX_BODY_BYTES",
    429: "A rate limit (`rate_limit_exceeded`) or budget (`insufficient_quota`); see Retry-After",
    500: "An unexpected error; the message carries the request id",
    501: "The feature needs an optional extra this server does not have installed",
    503: "A dependency (model server, voice engine, database) is unavailable",
    504: "An engine ran past its deadline (embedding, speech synthesis); the hint names it",
    507: "The server's disk is full: nothing was stored",
}


def error_specs(json_body: bool) -> dict[int, ResponseSpec]:
    specs = {
        status: ResponseSpec(ErrorResponse, description=text, generate_examples=False)
        for status, text in _ERRORS.items()
    }
    if json_body:
        specs[415] = ResponseSpec(
            ErrorResponse,
            description="The body is not sent as `Content-Type: application/json`",
            generate_examples=False,
        )
    return specs


def document(handlers: list[Any]) -> None:
    """Every HTTP operation documents the error statuses any route can answer, with
    the one error body; a handler's own `responses` win."""
    for handler in handlers:
        if not hasattr(handler, "http_methods"):
            continue
        params = handler.parsed_fn_signature.parameters
        json_body = "data" in params
        handler.responses = {**error_specs(json_body), **(handler.responses or {})}


@dataclass
class StreamingOperation(Operation):
    """An operation whose 200 is JSON, or SSE when the request sets `stream: true`."""

    def __post_init__(self) -> None:
        ok = (self.responses or {}).get("200")
        content = getattr(ok, "content", None)
        if isinstance(content, dict):
            content["text/event-stream"] = OpenAPIMediaType(
                schema=Schema(
                    description="With `stream: true`: `data: <chat.completion.chunk JSON>` "
                    "events, then `data: [DONE]`"
                )
            )


def _schema_of(media: str) -> Schema:
    if media == "text/event-stream":
        return Schema(description="server-sent events, each `data:` a JSON object")
    if media.startswith("text/"):
        return Schema(type=OpenAPIType.STRING)
    return Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)


def media_operation(*media_types: str) -> type[Operation]:
    """An Operation class whose 200 is one of `media_types` (audio, SSE, HTML): the
    handler streams bytes, so Litestar cannot see the content type from its return."""

    @dataclass
    class MediaOperation(Operation):
        def __post_init__(self) -> None:
            ok = (self.responses or {}).get("200")
            if ok is None or isinstance(ok, Reference):
                return
            ok.content = {
                media: OpenAPIMediaType(schema=_schema_of(media)) for media in media_types
            }

    return MediaOperation
