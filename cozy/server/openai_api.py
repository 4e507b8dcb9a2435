"""OpenAI-compatible routes: chat completions (JSON and SSE), models, embeddings."""

from __future__ import annotations

import asyncio
import base64
import struct
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.params import JSONBody
from litestar.response import Stream

from cozy.core.errors import CozyError, EngineError
from cozy.core.events import (
    ChatEvent,
    ContextBuilt,
    Done,
    Failed,
    Started,
    ToolCallRequested,
    ToolResult,
)
from cozy.engines.base import EmbedEngine
from cozy.server.chat import (
    SESSION_HEADER,
    ChunkWriter,
    build_request,
    completion_body,
    context_engines,
)
from cozy.server.deps import PathStr, PrincipalDep, Services, services
from cozy.server.errors import body as error_body
from cozy.server.errors import error_response, status_for
from cozy.server.schemas import ChatCompletionRequest, EmbeddingRequest


class _Turn:
    """Per-request bookkeeping shared by the JSON and SSE paths."""

    def __init__(self, svc: Services, request: Request[Any, Any, Any], stream: bool) -> None:
        self.svc = svc
        self.state: dict[str, Any] = request.scope["state"]
        self.stream = "true" if stream else "false"
        self.started = time.perf_counter()
        self.status = "error"
        self.model = "unknown"

    def see(self, event: ChatEvent) -> None:
        m = self.svc.metrics
        if isinstance(event, Started):
            self.state["session_id"] = event.session_id
            self.state["personality_id"] = event.personality_id
            self.model = event.model
        elif isinstance(event, ContextBuilt):
            engines = context_engines(event)
            self.state["engines"] = engines
            m.observe_context(engines)
        elif isinstance(event, ToolResult):
            status = "denied" if event.decision == "deny" else "error" if event.is_error else "ok"
            m.tool_calls.labels(event.name, "server", status).inc()
        elif isinstance(event, ToolCallRequested) and event.client_side:
            m.tool_calls.labels(event.call.name, "client", "returned").inc()
        elif isinstance(event, Done):
            self.status = "ok"
            self.state["timings"] = event.timings
            scope = self.state["principal"].limit_scope
            self.svc.limiter.add_tokens(scope, int(event.usage.get("total_tokens", 0)))

    def finish(self) -> None:
        m = self.svc.metrics
        m.chat_requests.labels(self.model, self.stream, self.status).inc()
        m.chat_latency.labels(self.stream).observe(time.perf_counter() - self.started)


def _failed_response(failed: Failed, session_id: str | None) -> Response[Any]:
    err = failed.error
    payload = error_body(
        str(err.get("message", "error")),
        type_=str(err.get("type", "server_error")),
        code=err.get("code"),
    )
    headers = {SESSION_HEADER: session_id} if session_id else None
    return error_response(status_for(err), payload, headers)


class OpenAIController(Controller):
    path = "/v1"
    tags = ("openai",)

    @post("/chat/completions", status_code=200, summary="Create a chat completion")
    async def chat_completions(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[ChatCompletionRequest],
        principal: PrincipalDep,
    ) -> Response[Any]:
        svc = services(request)
        rt = svc.runtime
        req = build_request(
            data,
            principal.caller(),
            rt.personalities,
            session_header=request.headers.get(SESSION_HEADER),
            request_id=request.scope["state"]["request_id"],
        )
        cid = f"chatcmpl-{req.request_id}"
        created = int(time.time())
        turn = _Turn(svc, request, data.stream)
        events = rt.orchestrator.run(req)
        if not data.stream:
            try:
                async for event in events:
                    turn.see(event)
                    if isinstance(event, Failed):
                        return _failed_response(event, event.session_id)
                    if isinstance(event, Done):
                        body = completion_body(event, cid=cid, created=created, model=data.model)
                        return Response(body, headers={SESSION_HEADER: event.session_id})
                raise EngineError("the turn ended without an answer")
            finally:
                turn.finish()
        # streaming: run prepare before answering, so bad sessions/models get a real status
        first: Started | None = None
        async for event in events:
            turn.see(event)
            if isinstance(event, Failed):
                turn.finish()
                return _failed_response(event, event.session_id)
            if isinstance(event, Started):
                first = event
                break
        if first is None:
            turn.finish()
            raise EngineError("the turn ended before it started")
        writer = ChunkWriter(
            cid=cid,
            created=created,
            model=data.model,
            include_usage=bool(data.stream_options and data.stream_options.include_usage),
        )
        return Stream(
            _sse(events, writer, turn),
            media_type="text/event-stream",
            headers={
                SESSION_HEADER: first.session_id,
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            },
        )

    @get("/models", summary="List models: personalities (cozy/<id>) and the provider's models")
    async def list_models(self, request: Request[Any, Any, Any], principal: PrincipalDep) -> Any:
        rt = services(request).runtime
        data = [_model(f"cozy/{pid}", "cozy") for pid in sorted(rt.personalities.all())]
        data.insert(0, _model("cozy", "cozy"))
        try:
            infos = await asyncio.wait_for(rt.list_models(), 5)
        except (CozyError, TimeoutError, OSError):
            infos = []  # the provider is down: personalities still work once it is back
        data.extend(_model(f"{i.provider}:{i.id}", i.provider) for i in infos)
        return {"object": "list", "data": data}

    @get("/models/{model_id:path}", summary="One model")
    async def get_model(
        self, request: Request[Any, Any, Any], model_id: PathStr, principal: PrincipalDep
    ) -> Any:
        from cozy.server.chat import UnknownModel

        listed = await self.list_models.fn(self, request, principal)
        wanted = model_id.lstrip("/")
        for item in listed["data"]:
            if item["id"] == wanted:
                return item
        raise UnknownModel(f"the model '{wanted}' does not exist", hint="see GET /v1/models")

    @post("/embeddings", status_code=200, summary="Create embeddings")
    async def embeddings(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[EmbeddingRequest],
        principal: PrincipalDep,
    ) -> Any:
        from cozy.core.errors import ConfigError

        engine = await services(request).runtime.engine("embed")
        if not isinstance(engine, EmbedEngine):
            raise ConfigError(
                "no embed engine is configured",
                hint="set `embed: {provider: local}` in engines.yaml (see `cozy config path`)",
            )
        texts = [data.input] if isinstance(data.input, str) else data.input
        vectors = await engine.embed(texts)
        out = []
        for i, vec in enumerate(vectors):
            emb: Any = vec
            if data.encoding_format == "base64":
                emb = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode()
            out.append({"object": "embedding", "index": i, "embedding": emb})
        tokens = sum(max(1, len(t) // 4) for t in texts)
        return {
            "object": "list",
            "data": out,
            "model": data.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }


def _model(mid: str, owner: str) -> dict[str, Any]:
    return {"id": mid, "object": "model", "created": 0, "owned_by": owner}


async def _sse(
    events: AsyncIterator[ChatEvent], writer: ChunkWriter, turn: _Turn
) -> AsyncIterator[bytes]:
    """SSE body. A client disconnect cancels this task: the orchestrator saves the
    partial answer as interrupted."""
    try:
        yield writer.first()
        async for event in events:
            turn.see(event)
            if isinstance(event, Done):
                yield writer.done(event)
            elif isinstance(event, Failed):
                yield writer.failed(event)
            else:
                chunk = writer.event(event)
                if chunk is not None:
                    yield chunk
    except (asyncio.CancelledError, GeneratorExit):
        turn.status = "interrupted"
        raise
    finally:
        turn.finish()
        if turn.status != "ok" and isinstance(events, AsyncGenerator):
            # close the orchestrator's generator now (outside the cancelled scope), so
            # the partial answer is saved as interrupted without waiting for the GC
            task = asyncio.get_running_loop().create_task(events.aclose())
            _closing.add(task)
            task.add_done_callback(_closing.discard)


_closing: set[asyncio.Task[None]] = set()
