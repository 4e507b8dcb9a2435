"""JSON request bodies read strictly, before Litestar's own (lenient) parsing.

Litestar converts bodies with `strict=False`, so `"max_tokens": "10"` became 10 and a
missing or `text/plain` Content-Type was parsed as JSON anyway; and a body nested
1,000 deep raised RecursionError (a 500). OpenAI refuses all three, so a
`before_request` hook checks the Content-Type, bounds the nesting depth and decodes
the body with `strict=True` into the handler's own `data` type; the result is kept
in `scope["state"]["body"]` for the handler. Own code because Litestar has no
per-route strict mode.
"""

from __future__ import annotations

import re
from itertools import accumulate
from typing import Any

import msgspec

from cozy.core.errors import CozyError

MAX_DEPTH = 64  # far above any OpenAI body (tool schemas included), far below recursion

_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_BRACKETS = re.compile(rb"[\[\]{}]")
_AT = re.compile(r" - at `\$\.?([^`]*)`")
_OPEN = {ord("["), ord("{")}


class BadBody(CozyError):
    http_status = 400
    code = "invalid_request_error"
    error_type = "invalid_request_error"

    def __init__(self, message: str, *, param: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.param = param


class UnsupportedMediaType(CozyError):
    http_status = 415
    code = "unsupported_media_type"
    error_type = "invalid_request_error"


def depth(raw: bytes) -> int:
    """Deepest nesting of arrays/objects, brackets inside strings not counted."""
    brackets = _BRACKETS.findall(_STRINGS.sub(b"", raw))
    if not brackets:
        return 0
    return max(accumulate(1 if b[0] in _OPEN else -1 for b in brackets))


def check_content_type(content_type: str | None) -> None:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        sent = f"`{media}`" if media else "no Content-Type"
        raise UnsupportedMediaType(
            f"this endpoint takes a JSON body, but the request sent {sent}",
            hint="send the body as JSON with `Content-Type: application/json`",
        )


def decode(raw: bytes, type_: type[Any]) -> Any:
    """`raw` as `type_`, no coercion (a string is never an int), depth bounded."""
    if depth(raw) > MAX_DEPTH:
        raise BadBody(
            f"the JSON body is nested more than {MAX_DEPTH} levels deep",
            hint="send a flatter body",
        )
    try:
        return msgspec.json.decode(raw, type=type_, strict=True)
    except msgspec.ValidationError as exc:
        text = str(exc)
        at = _AT.search(text)
        param = at.group(1) if at else None
        message = _AT.sub("", text)
        raise BadBody(
            f"invalid request body: {param + ': ' if param else ''}{message}",
            param=param,
            hint="see the request schema at /schema/openapi.json",
        ) from None
    except (msgspec.DecodeError, RecursionError) as exc:
        raise BadBody(
            f"the body is not valid JSON: {exc}",
            hint="send a JSON body with `Content-Type: application/json`",
        ) from None


# Keyed by id, holding the handler too: a dead handler's id can be reused by a new
# app's handler, which then got the old one's answer (a multipart route asked for JSON).
_TYPES: dict[int, tuple[Any, type[Any] | None]] = {}


def _body_type(handler: Any) -> type[Any] | None:
    """The msgspec Struct a handler takes as a JSON `data` body, or None."""
    key = id(handler)
    cached = _TYPES.get(key)
    if cached is not None and cached[0] is handler:
        return cached[1]
    found: type[Any] | None = None
    field = handler.parsed_fn_signature.parameters.get("data")
    if field is not None:
        kwarg = field.kwarg_definition
        media = getattr(kwarg, "media_type", "application/json") if kwarg else None
        media = getattr(media, "value", media) or "application/json"
        annotation = field.annotation
        if (
            media == "application/json"
            and isinstance(annotation, type)
            and issubclass(annotation, msgspec.Struct)
        ):
            found = annotation
    _TYPES[key] = (handler, found)
    return found


async def strict_json_body(request: Any) -> None:
    """`before_request` hook: the route's JSON body, checked and decoded strictly."""
    type_ = _body_type(request.route_handler)
    if type_ is None:
        return
    check_content_type(request.headers.get("content-type"))
    request.scope["state"]["body"] = decode(await request.body(), type_)
