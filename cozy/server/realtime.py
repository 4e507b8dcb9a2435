"""`WS /v1/realtime`: the OpenAI Realtime protocol over a WebSocket.

Works with the official client unchanged:

    client = openai.AsyncOpenAI(base_url="http://127.0.0.1:8000/v1", api_key=KEY)
    async with client.realtime.connect(model="cozy/assistant") as conn: ...

`model` is `cozy`, `cozy/<personality>`, a personality id, or a provider model;
OpenAI's own realtime model names (`gpt-realtime`, `gpt-4o-realtime-preview`…)
mean the default personality, so apps written for OpenAI run as they are.
Auth is the server's (Bearer key or JWT, checked before the upgrade); browsers, which
cannot set headers on a WebSocket, send the key as the `openai-insecure-api-key.KEY`
subprotocol (as OpenAI's browser SDK does) or `?key=` (the `/voice` page). Limits per
connection (`COZY_SERVER_REALTIME_*`): session length, uncommitted buffer, size of
one append, open sessions per process. Bad events get protocol `error` events and
the connection stays; only an expired session or the session cap closes it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, cast

from litestar import Controller, WebSocket, websocket
from litestar.types import ASGIApp, Receive, Scope, Send

from cozy.core.errors import CozyError, NotFoundError, UsageError
from cozy.engines.base import VoiceEngine
from cozy.server.realtime_protocol import (
    BETA_NAMES,
    BETA_ONLY_GA,
    ProtocolError,
    RealtimeLimits,
    SessionConfig,
    error_event,
    new_id,
    parse_event,
)
from cozy.server.realtime_session import RealtimeSession

log = logging.getLogger("cozy.server.realtime")

CLOSE_POLICY = 1008
CLOSE_TRY_LATER = 1013


class _Wire:
    """Serialises sends (response, transcription and the reader share one socket)."""

    def __init__(self, socket: WebSocket[Any, Any, Any], beta: bool) -> None:
        self.socket = socket
        self.beta = beta
        self.lock = asyncio.Lock()
        self.open = True

    async def send(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if self.beta:
            if kind in BETA_ONLY_GA:
                return
            event = {**event, "type": BETA_NAMES.get(kind, kind)}
        data = json.dumps({"event_id": new_id("event"), **event}, separators=(",", ":"))
        async with self.lock:
            if not self.open:
                return
            try:
                await self.socket.send_text(data)
            except Exception:  # the client went away mid-send: the reader sees the disconnect
                self.open = False


class DenyBeforeUpgrade:
    """A failed authentication answers the upgrade with HTTP 401 and the OpenAI error body
    (ASGI `websocket.http.response`), not a bare 403. The router's guard still runs after
    (auth is cached; the rate limits are counted there, once)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, asgi_scope: Scope, receive: Receive, send: Send) -> None:
        scope = cast(dict[str, Any], asgi_scope)
        if scope["type"] == "websocket":
            browser_key(scope)
        if scope["type"] == "websocket" and "websocket.http.response" in (
            scope.get("extensions") or {}
        ):
            headers = dict(scope.get("headers") or [])
            auth = headers.get(b"authorization")
            try:
                await scope["app"].state.services.auth.authenticate(
                    auth.decode("latin-1") if auth else None
                )
            except CozyError as exc:
                body = json.dumps({"error": {**exc.to_dict(), "param": None}}).encode()
                start: Any = {
                    "type": "websocket.http.response.start",
                    "status": exc.http_status,
                    "headers": [(b"content-type", b"application/json")],
                }
                await send(start)
                await send(cast(Any, {"type": "websocket.http.response.body", "body": body}))
                return
        await self.app(asgi_scope, receive, send)


BROWSER_KEY_PROTOCOL = "openai-insecure-api-key."


def browser_key(scope: dict[str, Any]) -> None:
    """Browsers cannot set headers on a WebSocket: take the key from the subprotocol the
    OpenAI browser SDK uses (`openai-insecure-api-key.KEY`) or from `?key=`, as if it had
    come as `Authorization: Bearer KEY`. A real Authorization header wins."""
    from urllib.parse import parse_qs

    headers = list(scope.get("headers") or [])
    if any(name == b"authorization" for name, _ in headers):
        return
    key = next(
        (
            p[len(BROWSER_KEY_PROTOCOL) :]
            for p in scope.get("subprotocols") or []
            if p.startswith(BROWSER_KEY_PROTOCOL)
        ),
        None,
    )
    if not key:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        key = (query.get("key") or [None])[0]
    if key:
        scope["headers"] = [*headers, (b"authorization", f"Bearer {key}".encode("latin-1"))]


def resolve(runtime: Any, model: str | None) -> tuple[str | None, str | None, str]:
    """(personality, raw model, the name reported back) for the `model` query parameter."""
    from cozy.server.chat import resolve_model

    name = (model or "cozy").strip() or "cozy"
    if name.startswith("gpt-") and "realtime" in name:
        return None, None, name
    personality, raw = resolve_model(name, runtime.personalities)
    return personality, raw, name


class RealtimeController(Controller):
    path = "/v1/realtime"
    tags = ["realtime"]  # noqa: RUF012 - Litestar declares it as an instance attribute
    middleware = [DenyBeforeUpgrade]  # noqa: RUF012

    @websocket("/")
    async def realtime(self, socket: WebSocket[Any, Any, Any]) -> None:
        svc = socket.app.state.services
        limits: RealtimeLimits = socket.app.state.get("realtime_limits") or RealtimeLimits()
        socket.app.state["realtime_limits"] = limits
        beta = "realtime=v1" in socket.headers.get("openai-beta", "")
        offered = socket.scope.get("subprotocols") or []
        await socket.accept(subprotocols="realtime" if "realtime" in offered else None)
        wire = _Wire(socket, beta)
        open_now = int(socket.app.state.get("realtime_open", 0))
        if open_now >= limits.max_sessions:
            await wire.send(
                error_event(
                    ProtocolError(
                        f"this server already has {open_now} realtime sessions open",
                        code="session_limit",
                        hint="try again later, or raise COZY_SERVER_REALTIME_MAX_SESSIONS",
                    )
                )
            )
            await socket.close(code=CLOSE_TRY_LATER, reason="too many realtime sessions")
            return
        try:
            session = await self._open(socket, svc, limits, wire)
        except CozyError as exc:
            await wire.send(error_event(exc))
            await socket.close(code=CLOSE_POLICY, reason=exc.message[:120])
            return
        socket.app.state["realtime_open"] = int(socket.app.state.get("realtime_open", 0)) + 1
        svc.metrics.realtime_sessions.inc()
        started = time.monotonic()
        reason = "client closed"
        try:
            reason = await self._serve(socket, session, wire, limits, started)
        finally:
            await session.close()
            svc.metrics.realtime_sessions.dec()
            socket.app.state["realtime_open"] = int(socket.app.state["realtime_open"]) - 1
            log.info(
                "realtime session closed",
                extra={
                    "session_id": session.cozy_session,
                    "user_id": session.principal.user_id,
                    "seconds": round(time.monotonic() - started, 3),
                    "reason": reason,
                },
            )

    async def _open(
        self, socket: WebSocket[Any, Any, Any], svc: Any, limits: RealtimeLimits, wire: _Wire
    ) -> RealtimeSession:
        principal = socket.scope["state"]["principal"]
        try:
            personality, raw, name = resolve(svc.runtime, socket.query_params.get("model"))
        except NotFoundError as exc:
            raise ProtocolError(
                str(exc.message), code="model_not_found", param="model", hint=exc.hint
            ) from None
        engine = await svc.runtime.engine("voice")
        config = SessionConfig(model=name)
        if not isinstance(engine, VoiceEngine):
            engine = None
            config.output_modalities = ["text"]
            config.turn_detection = None
        session = RealtimeSession(
            runtime=svc.runtime,
            engine=engine,
            principal=principal,
            config=config,
            personality=personality,
            model=raw,
            limits=limits,
            send=wire.send,
        )
        await wire.send({"type": "session.created", "session": config.wire()})
        return session

    async def _serve(
        self,
        socket: WebSocket[Any, Any, Any],
        session: RealtimeSession,
        wire: _Wire,
        limits: RealtimeLimits,
        started: float,
    ) -> str:
        while True:
            left = limits.max_session_seconds - (time.monotonic() - started)
            try:
                message = cast(dict[str, Any], await asyncio.wait_for(socket.receive(), left))
            except TimeoutError:
                await wire.send(
                    error_event(
                        ProtocolError(
                            f"the session reached its limit of {limits.max_session_seconds:g} s",
                            code="session_expired",
                            hint="open a new connection",
                        )
                    )
                )
                await socket.close(code=1000, reason="session expired")
                return "expired"
            if message.get("type") == "websocket.disconnect":
                return "client closed"
            text = message.get("text")
            client_id: str | None = None
            try:
                if text is None:
                    raise ProtocolError(
                        "binary frames are not part of the protocol",
                        code="invalid_event",
                        hint="send JSON text events (audio: base64 in input_audio_buffer.append)",
                    )
                event = parse_event(text)
                client_id = (
                    event.get("event_id") if isinstance(event.get("event_id"), str) else None
                )
                await session.handle(event)
            except UsageError as exc:
                await wire.send(error_event(exc, client_id))
            except CozyError as exc:
                await wire.send(error_event(exc, client_id))
            except Exception as exc:  # never let one bad event end the connection
                log.exception("realtime event failed")
                await wire.send(
                    error_event(
                        CozyError(f"internal error: {type(exc).__name__}: {exc}"), client_id
                    )
                )
