"""Errors → OpenAI error bodies, in ONE place.

`{"error": {"message", "type", "param", "code"}}` with the CozyError's `http_status`;
Litestar's own errors (validation, 404 route, 405, 413) get the same shape; anything
unexpected is logged with the request id and answered 500 without internals.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from cozy.core import errors as E
from cozy.server.ratelimit import RateLimited
from cozy.server.responses import ErrorDetail, ErrorResponse

if TYPE_CHECKING:
    from litestar import Request, Response

log = logging.getLogger("cozy.server")

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def body(
    message: str, *, type_: str, code: str | None = None, param: str | None = None
) -> ErrorResponse:
    """The one error body (documented for every operation as `ErrorResponse`)."""
    return ErrorResponse(error=ErrorDetail(message=message, type=type_, param=param, code=code))


def error_response(
    status: int, payload: ErrorResponse, headers: dict[str, str] | None = None
) -> Response[Any]:
    from litestar import Response

    return Response(payload, status_code=status, headers=headers, media_type="application/json")


def cozy_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    assert isinstance(exc, E.CozyError)
    headers = None
    if isinstance(exc, RateLimited | E.ModelBusy):
        headers = {"Retry-After": str(exc.retry_after)}
    param = getattr(exc, "param", None)
    payload = body(str(exc), type_=exc.error_type, code=exc.code, param=param)
    return error_response(exc.http_status, payload, headers)


def http_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    from litestar.exceptions import HTTPException, ValidationException

    assert isinstance(exc, HTTPException)
    status = exc.status_code
    if status >= 500:
        return internal_error_handler(request, exc)
    message = str(exc.detail)
    param = None
    if isinstance(exc, ValidationException) or status == 400:
        status = 400
        extra = exc.extra if isinstance(exc.extra, list) else []
        parts = []
        for item in extra:
            if isinstance(item, dict):
                key = item.get("key")
                param = param or (str(key) if key else None)
                parts.append(f"{key}: {item.get('message')}" if key else str(item.get("message")))
        if parts:
            message = f"invalid request body: {'; '.join(parts)}"
        elif "decode" in message.lower() or "json" in message.lower():
            message = f"the body is not valid JSON: {message}"
        message += " — see the request schema at /schema/openapi.json"
    elif status == 413:
        message = "the request body is too large — send less, or raise COZY_SERVER_MAX_BODY_BYTES"
    elif status == 404:
        message = f"no route {request.method} {request.url.path} — see /schema for the routes"
    elif status == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    type_ = _TYPES.get(status, "invalid_request_error")
    code = {401: "invalid_api_key", 404: "not_found", 413: "request_too_large"}.get(status)
    headers = None
    if status == 405 and exc.headers:
        # Allow: the route's HTTP methods (Litestar lists its internal handler kinds too)
        allowed = [m for m in str(exc.headers.get("allow", "")).split(", ") if m.isupper()]
        headers = {"Allow": ", ".join(allowed)}
        message += f"; allowed: {headers['Allow']}"
    return error_response(
        status, body(message, type_=type_, code=code or "invalid_request", param=param), headers
    )


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    request_id = request.scope.get("state", {}).get("request_id")
    log.error(
        "unhandled error",
        exc_info=(type(exc), exc, exc.__traceback__),
        extra={"request_id": request_id, "route": request.url.path},
    )
    message = f"internal error ({type(exc).__name__}); request id {request_id}"
    return error_response(500, body(message, type_="server_error", code="internal_error"))


def exception_handlers() -> dict[type[Exception] | int, Any]:
    from litestar.exceptions import HTTPException

    return {
        E.CozyError: cozy_error_handler,
        HTTPException: http_error_handler,
        Exception: internal_error_handler,
    }
