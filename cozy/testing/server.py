"""`FakeModelServer`: a real HTTP server speaking the OpenAI and Ollama APIs.

The Litestar app (routes in `openai_api` and `ollama_api`) sits behind a small
ASGI wrapper that records every request, checks the API key and injects failures
(an error status with the right error body, or a dropped connection). uvicorn
runs it on a background thread. Litestar and uvicorn are imported on `start()`.
"""

from __future__ import annotations

import asyncio
import json
import math
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from cozy.testing.script import (
    UNSET,
    ChatView,
    Failure,
    Reply,
    Rule,
    Script,
    ScriptedCall,
    make_reply,
    opens_background,
)

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[Any]]

DEFAULT_MODELS = ("fake-model", "fake-embed")


class DroppedConnection(Exception):
    """Raised inside the server to cut a connection on purpose."""


@dataclass(slots=True)
class RecordedRequest:
    """One request the server received. `req["key"]` reads the JSON body."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.body[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.body.get(key, default) if isinstance(self.body, dict) else default


def is_background(request: RecordedRequest) -> bool:
    """True when the request comes from a cozy background job, not a turn."""
    messages = request.get("messages") or []
    first = messages[0] if messages and isinstance(messages[0], dict) else {}
    return opens_background(first.get("role"), first.get("content"))


class FakeModelServer:
    """A scriptable fake model; see the module docs and `cozy/testing/__init__.py`."""

    def __init__(
        self,
        latency: float = 0.0,
        tokens_per_second: float | None = None,
        *,
        models: Sequence[str] = DEFAULT_MODELS,
        strict_models: bool = False,
        api_key: str | None = None,
        embedding_dims: int = 384,
        context_length: int = 8192,
    ) -> None:
        self._defaults = (latency, tokens_per_second, tuple(models), strict_models, api_key)
        self.latency = latency
        self.tokens_per_second = tokens_per_second
        self.models: list[str] = list(models)
        self.strict_models = strict_models
        # models whose `/api/show` lists the "vision" capability (Ollama's way to say so)
        self.vision_models: set[str] = {"llava", "fake-vision"}
        self.api_key = api_key
        self.embedding_dims = embedding_dims
        self.context_length = context_length
        # extra fields of every /v1/models entry (e.g. vLLM's {"max_model_len": 32768})
        self.model_meta: dict[str, Any] = {}
        self.script = Script()
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None
        self.host = "127.0.0.1"

    # -- scripting ---------------------------------------------------------
    def queue_reply(
        self,
        text: str = "",
        tool_calls: Sequence[tuple[str, Mapping[str, Any]] | ScriptedCall] | None = None,
        json: Any = UNSET,
    ) -> None:
        """Queue the next turn's answer (FIFO; queued replies win over rules and the default).

        cozy's background jobs never take a queued reply (they get rules or the
        default), so a reply queued for the next turn waits for that turn.
        """
        self.script.queue(make_reply(text, tool_calls, json))

    def add_rule(
        self,
        *,
        user_contains: str | None = None,
        after_tool: bool | None = None,
        tool_offered: str | None = None,
        predicate: Callable[[ChatView], bool] | None = None,
        text: str = "",
        tool_calls: Sequence[tuple[str, Mapping[str, Any]] | ScriptedCall] | None = None,
        json: Any = UNSET,
        times: int | None = None,
    ) -> Rule:
        """Answer with text/tool calls/json whenever the conditions hold (see `Rule`)."""
        rule = Rule(
            reply=make_reply(text, tool_calls, json),
            user_contains=user_contains,
            after_tool=after_tool,
            tool_offered=tool_offered,
            predicate=predicate,
            times=times,
        )
        return self.script.add_rule(rule)

    def fail_next(
        self,
        status: int = 500,
        times: int = 1,
        *,
        path: str | None = None,
        drop: bool = False,
        after_chunks: int = 0,
        retry_after: float | None = None,
        message: str | None = None,
        hang: bool = False,
    ) -> None:
        """The next `times` requests (whose path contains `path`) fail.

        With `drop=True` the connection is closed instead of answering; with
        `after_chunks=N` a streaming response is cut after N body chunks.
        With `hang=True` the connection stays open and silent: no headers at all, or
        (with `after_chunks=N`) nothing after N body chunks, until the client leaves.
        `retry_after` (seconds) is sent as `retry-after-ms` / `retry-after`.
        """
        self.script.add_failure(
            Failure(status, times, path, drop, after_chunks, retry_after, message, hang)
        )

    def reset(self) -> None:
        """Forget queued replies, rules, failures and recorded requests."""
        latency, tps, models, strict, key = self._defaults
        self.script.reset()
        self.latency, self.tokens_per_second = latency, tps
        self.models, self.strict_models, self.api_key = list(models), strict, key
        self.model_meta = {}
        self.vision_models = {"llava", "fake-vision"}
        with self._lock:
            self.requests.clear()

    def chat_requests(self) -> list[RecordedRequest]:
        """Recorded chat requests (OpenAI and Ollama)."""
        with self._lock:
            return [r for r in self.requests if r.path in ("/v1/chat/completions", "/api/chat")]

    def turn_requests(self) -> list[RecordedRequest]:
        """Chat requests made for a user's turn: cozy's background jobs left out.

        The job worker (memory and profile extraction, session summaries) shares
        the model with the turns and can run between two of them, so a test that
        asks about "the last turn" must not look at `chat_requests()[-1]`.
        """
        return [r for r in self.chat_requests() if not is_background(r)]

    # -- models ------------------------------------------------------------
    def knows_model(self, name: str) -> bool:
        if not self.strict_models:
            return True
        return name in self.models or name.removesuffix(":latest") in self.models

    # -- pacing (used by the protocol modules) ----------------------------
    async def first_token_delay(self) -> None:
        if self.latency > 0:
            await asyncio.sleep(self.latency)

    async def token_delay(self, tokens: int = 1) -> None:
        if self.tokens_per_second and tokens > 0:
            await asyncio.sleep(tokens / self.tokens_per_second)

    # -- lifecycle -----------------------------------------------------------
    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("FakeModelServer is not started; call .start() first")
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return self.url + "/v1"

    def build_app(self) -> ASGIApp:
        from cozy.testing.app import create_app

        return _Wrapper(self, create_app(self))

    def _config(self, host: str, port: int, log_level: str) -> Any:
        import uvicorn

        return uvicorn.Config(
            self.build_app(),
            host=host,
            port=port,
            http="h11",
            lifespan="off",
            log_level=log_level,
            access_log=False,
            timeout_graceful_shutdown=1,
        )

    def start(self, port: int = 0, host: str = "127.0.0.1") -> FakeModelServer:
        """Serve on a background thread; returns once connections are accepted."""
        import uvicorn

        if self._thread is not None:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        self.host, self.port = host, sock.getsockname()[1]
        self._server = uvicorn.Server(self._config(host, self.port, "critical"))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True, name="fake-model"
        )
        self._thread.start()
        deadline = time.monotonic() + 60  # generous: a loaded machine starts threads slowly
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake model server did not start")
            time.sleep(0.005)
        return self

    def serve_forever(self, port: int = 11434, host: str = "127.0.0.1") -> None:
        """Serve on the calling thread (used by `python -m cozy.testing`)."""
        import uvicorn

        self.host, self.port = host, port
        uvicorn.Server(self._config(host, port, "info")).run()

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server, self._thread = None, None

    def __enter__(self) -> FakeModelServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _openai_error(status: int, message: str) -> dict[str, Any]:
    kinds = {
        400: ("invalid_request_error", None),
        401: ("invalid_request_error", "invalid_api_key"),
        403: ("permission_error", None),
        404: ("invalid_request_error", "model_not_found"),
        429: ("requests", "rate_limit_exceeded"),
    }
    kind, code = kinds.get(status, ("server_error", None))
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def error_response_body(path: str, status: int, message: str) -> bytes:
    """The error body in the API's own shape: OpenAI under /v1, Ollama otherwise."""
    body = _openai_error(status, message) if path.startswith("/v1") else {"error": message}
    return json.dumps(body).encode()


class _Wrapper:
    """ASGI middleware: record, authenticate, inject failures."""

    def __init__(self, server: FakeModelServer, app: ASGIApp) -> None:
        self.server = server
        self.app = app

    async def __call__(  # noqa: C901 - records a request of each kind the fake serves
        self, scope: Scope, receive: Receive, send: Send
    ) -> Any:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        chunks: list[bytes] = []
        while True:
            msg = await receive()
            chunks.append(msg.get("body", b""))
            if not msg.get("more_body"):
                break
        raw = b"".join(chunks)
        path: str = scope["path"]
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            body: Any = json.loads(raw) if raw else {}
        except ValueError:
            body = raw.decode("utf-8", "replace")
        with self.server._lock:
            self.server.requests.append(RecordedRequest(scope["method"], path, headers, body))

        failure = self.server.script.take_failure(path)
        if failure is not None and failure.hang and failure.after_chunks <= 0:
            return await _silent(receive)
        if failure is not None and failure.drop and failure.after_chunks <= 0:
            return True  # uvicorn closes the socket when an app returns non-None
        if failure is not None and not failure.drop and not failure.hang:
            message = failure.message or f"injected failure ({failure.status})"
            return await _send_error(send, path, failure.status, message, failure.retry_after)
        key = self.server.api_key
        if key and path.startswith("/v1") and headers.get("authorization") != f"Bearer {key}":
            message = "Incorrect API key provided. You can find your API key in your settings."
            return await _send_error(send, path, 401, message, None)

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await receive()

        if failure is None:
            return await self.app(scope, replay, send)
        budget = failure.after_chunks

        async def cutting_send(msg: Message) -> None:
            nonlocal budget
            if msg["type"] == "http.response.body":
                if budget <= 0 and failure.hang:
                    await _silent(receive)
                if budget <= 0:
                    raise DroppedConnection("injected connection drop")
                budget -= 1
            await send(msg)

        return await self.app(scope, replay, cutting_send)


async def _silent(receive: Receive) -> None:
    """Hold the connection open without sending a byte until the client disconnects
    (or the server stops, which cancels this)."""
    while (await receive())["type"] != "http.disconnect":
        pass
    raise DroppedConnection("the client left a silent response")


async def _send_error(
    send: Send, path: str, status: int, message: str, retry_after: float | None
) -> None:
    body = error_response_body(path, status, message)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if retry_after is not None:
        headers.append((b"retry-after-ms", str(int(retry_after * 1000)).encode()))
        headers.append((b"retry-after", str(math.ceil(max(retry_after, 0.0))).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


__all__ = ["DEFAULT_MODELS", "FakeModelServer", "RecordedRequest", "Reply"]
