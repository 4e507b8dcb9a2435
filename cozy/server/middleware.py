"""One ASGI middleware for request ids, access logs, HTTP metrics and the request span.

`X-Request-ID` is taken from the request when it is sane (else made) and returned
on every response. Controllers add `user_id`, `session_id`, `personality_id`,
`timings` and `engines` to `scope["state"]`; the access log line carries them in
the brief's shape once the response (streams included) has finished.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any, cast

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from cozy.server.metrics import method_label, route_label

access_log = logging.getLogger("cozy.access")

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def _request_id(scope: dict[str, Any]) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = bytes(value).decode("latin-1")
            if _SAFE_ID.match(text):
                return text
            break
    return f"req-{uuid.uuid4().hex[:20]}"


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, asgi_scope: Scope, receive: Receive, send: Send) -> None:
        scope = cast("dict[str, Any]", asgi_scope)
        if scope["type"] != "http":
            await self.app(asgi_scope, receive, send)
            return
        started = time.perf_counter()
        rid = _request_id(scope)
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = rid
        app_state = scope["app"].state
        idle = app_state.get("idle_trim")
        if idle is not None:
            idle.touch()
        tracing = app_state.get("tracing")
        span = tracing.start_request(scope["method"], scope["path"], rid) if tracing else None
        status = 500
        rid_header = (b"x-request-id", rid.encode())

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), rid_header]
            await send(message)

        try:
            await self.app(asgi_scope, receive, send_wrapper)
        finally:
            latency_ms = round((time.perf_counter() - started) * 1000, 2)
            route = route_label(scope)
            metrics = app_state.get("metrics")
            if metrics is not None:
                metrics.http_requests.labels(
                    method_label(scope["method"]), route, str(status)
                ).inc()
            if tracing is not None:
                tracing.end_request(span, status, state)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    "request",
                    extra={
                        "request_id": rid,
                        "user_id": state.get("user_id"),
                        "session_id": state.get("session_id"),
                        "personality_id": state.get("personality_id"),
                        "latency_ms": latency_ms,
                        "method": scope["method"],
                        "route": route,
                        "path": scope["path"][:200],
                        "status": status,
                        "engines": state.get("engines") or {},
                    },
                )
