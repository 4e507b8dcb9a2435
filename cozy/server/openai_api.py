"""OpenAI-compatible routes: chat completions (JSON and SSE), models, embeddings."""

from __future__ import annotations

import asyncio
import base64
import struct
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, cast

from litestar import Controller, Request, Response, get, post
from litestar.openapi.datastructures import ResponseSpec
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
from cozy.core.orchestrator import ChatRequest
from cozy.engines.base import EmbedEngine
from cozy.engines.capabilities import Admission
from cozy.runtime import Runtime
from cozy.server.chat import (
    SESSION_HEADER,
    BadParam,
    ChunkWriter,
    build_request,
    completion_body,
    context_engines,
    fan_out,
    fingerprint,
    usage_of,
)
from cozy.server.deps import PathStr, PrincipalDep, Services, services
from cozy.server.errors import body as error_body
from cozy.server.errors import error_response
from cozy.server.metering import ChatMeter
from cozy.server.metrics import model_label
from cozy.server.responses import (
    ChatCompletion,
    EmbeddingList,
    EmbeddingObject,
    EmbeddingUsage,
    ModelList,
    ModelObject,
    StreamingOperation,
)
from cozy.server.schemas import ChatCompletionRequest, EmbeddingRequest

# names the context engines an answer was built without (timed out, failed, keywords only)
DEGRADED_HEADER = "x-cozy-degraded"


def known_models(rt: Runtime) -> set[str]:
    """Model names that may be metric labels: what the operator configured."""
    personalities = rt.personalities.all()
    ai = rt.config.ai
    known = {"cozy", *personalities, *(f"cozy/{p}" for p in personalities), *ai.aliases}
    for spec in (ai.model, rt.settings.model):
        if spec:
            known |= {spec, spec.partition(":")[2] or spec}
    return known


def _plan(rt: Runtime, req: ChatRequest) -> tuple[str | None, int]:
    """For the estimate: the `provider:model` the request will most likely use (when
    prices are configured) and the personality prompt's tokens cozy adds."""
    found = rt.personalities.all().get(req.personality or rt.orchestrator.default_personality)
    system = len(found.system_prompt) // 4 if found else 0
    if not rt.config.ai.prices:
        return None, system
    try:
        provider, model = rt.router.split(req.model or (found.model if found else None))
    except CozyError:
        return None, system
    return f"{provider}:{model}", system


class _Turn:
    """Per-request bookkeeping shared by the JSON and SSE paths."""

    def __init__(
        self, svc: Services, request: Request[Any, Any, Any], stream: bool, model: str
    ) -> None:
        self.svc = svc
        self.state: dict[str, Any] = request.scope["state"]
        self.stream = "true" if stream else "false"
        self.started = time.perf_counter()
        self.status = "error"
        self.model = model_label(model, known_models(svc.runtime))
        rt = svc.runtime
        self.degraded: dict[str, Any] = {}  # the `cozy` field of a degraded answer
        self.meter = ChatMeter(svc.limiter, self.state["principal"].limit_scopes, rt.config.ai)

    def see(self, event: ChatEvent) -> None:
        m = self.svc.metrics
        if isinstance(event, Started):
            self.state["session_id"] = event.session_id
            self.state["personality_id"] = event.personality_id
        elif isinstance(event, ContextBuilt):
            engines = context_engines(event)
            self.state["engines"] = engines
            m.observe_context(engines)
            names = sorted(
                k for k, v in engines.items() if isinstance(v, dict) and v.get("degraded")
            )
            if names:
                reasons = list(event.metadata.get("degrade_reasons") or [])
                self.degraded = {"degraded": names, "degrade_reasons": reasons}
        elif isinstance(event, ToolResult):
            status = "denied" if event.decision == "deny" else "error" if event.is_error else "ok"
            m.tool_calls.labels(m.tool_label(event.name), "server", status).inc()
        elif isinstance(event, ToolCallRequested) and event.client_side:
            # the client names its own tools: one label value, not one per name
            m.tool_calls.labels("client", "client", "returned").inc()
        elif isinstance(event, Done):
            self.status = "ok"
            self.state["timings"] = event.timings
            self.meter.used(event.model, event.usage)

    def finish(self) -> None:
        self.meter.settle(interrupted=self.status == "interrupted")
        m = self.svc.metrics
        m.chat_requests.labels(self.model, self.stream, self.status).inc()
        m.chat_latency.labels(self.stream).observe(time.perf_counter() - self.started)


def _failed_response(failed: Failed, session_id: str | None) -> Response[Any]:
    err = failed.error
    payload = error_body(err.message, type_=err.type, code=err.code)
    headers = {SESSION_HEADER: session_id} if session_id else {}
    if err.retry_after:  # a busy in-process model: when to come back
        headers["Retry-After"] = str(err.retry_after)
    return error_response(err.http_status, payload, headers or None)


class OpenAIController(Controller):
    path = "/v1"
    tags = ("openai",)

    @post(
        "/chat/completions",
        status_code=200,
        summary="Create a chat completion",
        responses={200: ResponseSpec(ChatCompletion, description="The completion (JSON or SSE)")},
        operation_class=StreamingOperation,
    )
    async def chat_completions(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[ChatCompletionRequest],
        principal: PrincipalDep,
    ) -> Response[Any]:
        svc = services(request)
        rt = svc.runtime
        body: ChatCompletionRequest = request.scope["state"].get("body") or data
        req = build_request(
            body,
            principal.caller(),
            rt.personalities,
            session_header=request.headers.get(SESSION_HEADER),
            request_id=request.scope["state"]["request_id"],
            default_model=rt.settings.model,
        )
        cid = f"chatcmpl-{req.request_id}"
        created = int(time.time())
        turn = _Turn(svc, request, body.stream, body.model)
        priced, system = _plan(rt, req)
        # 429 before any model call when a limit or budget cannot hold the estimate
        await turn.meter.reserve(body, priced, rt.config.context.reserve_answer_tokens, system)
        n = body.n or 1
        try:
            # places on a queued model (the embedded one) before anything is saved or sent:
            # a full queue is a 503 with Retry-After, for a stream too (its 200 goes first)
            admission = await rt.admit(req.model, req.personality, n)
        except CozyError:
            turn.finish()
            raise
        if not body.stream:
            try:
                dones: list[Done] = []
                for result in await asyncio.gather(
                    *(_answer(rt, r, turn) for r in fan_out(req, n))
                ):
                    if isinstance(result, Failed):
                        return _failed_response(result, result.session_id)
                    dones.append(result)
                out = completion_body(dones, cid=cid, created=created, model=body.model)
                headers = {SESSION_HEADER: dones[0].session_id}
                if turn.degraded:  # visible to every client: a header and an extra field
                    out.cozy = turn.degraded
                    headers[DEGRADED_HEADER] = ",".join(turn.degraded["degraded"])
                return Response(out, headers=headers)
            finally:
                turn.finish()
                if admission is not None:
                    admission.release()
        # streaming: run prepare before answering, so bad sessions/models get a real status
        runs = [rt.orchestrator.run(r) for r in fan_out(req, n)]
        first: Started | None = None
        for events in runs:
            started = await _started(events, turn)
            if isinstance(started, Failed):
                turn.finish()
                if admission is not None:
                    admission.release()
                for other in runs:
                    await other.aclose()
                return _failed_response(started, started.session_id)
            first = first or started
        assert first is not None
        writer = ChunkWriter(
            cid=cid,
            created=created,
            model=body.model,
            include_usage=bool(body.stream_options and body.stream_options.include_usage),
            fingerprint=fingerprint(first.model),
        )
        return Stream(
            _sse(runs, writer, turn, admission),
            media_type="text/event-stream",
            headers={
                SESSION_HEADER: first.session_id,
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            },
        )

    @get("/models", summary="List models: personalities (cozy/<id>) and the provider's models")
    async def list_models(
        self, request: Request[Any, Any, Any], principal: PrincipalDep
    ) -> ModelList:
        rt = services(request).runtime
        data = [_model(f"cozy/{pid}", "cozy") for pid in sorted(rt.personalities.all())]
        data.insert(0, _model("cozy", "cozy"))
        try:
            infos = await asyncio.wait_for(rt.list_models(), 5)
        except (CozyError, TimeoutError, OSError):
            infos = []  # the provider is down: personalities still work once it is back
        data.extend(_model(f"{i.provider}:{i.id}", i.provider) for i in infos)
        return ModelList(object="list", data=data)

    @get("/models/{model_id:path}", summary="One model")
    async def get_model(
        self, request: Request[Any, Any, Any], model_id: PathStr, principal: PrincipalDep
    ) -> ModelObject:
        from cozy.server.chat import UnknownModel

        listed: ModelList = await self.list_models.fn(self, request, principal)
        wanted = model_id.lstrip("/")
        for item in listed.data:
            if item.id == wanted:
                return item
        raise UnknownModel(f"the model '{wanted}' does not exist", hint="see GET /v1/models")

    @post("/embeddings", status_code=200, summary="Create embeddings")
    async def embeddings(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[EmbeddingRequest],
        principal: PrincipalDep,
    ) -> EmbeddingList:
        from cozy.core.errors import ConfigError

        engine = await services(request).runtime.engine("embed")
        if not isinstance(engine, EmbedEngine):
            raise ConfigError(
                "no embed engine is configured",
                hint="set `embed: {provider: local}` in engines.yaml (see `cozy config path`)",
            )
        body: EmbeddingRequest = request.scope["state"].get("body") or data
        try:
            inputs = body.inputs()
        except ValueError as exc:
            raise BadParam(str(exc), param="input") from None
        server = services(request).server
        texts = [t for t in inputs if isinstance(t, str)]
        arrays = [t for t in inputs if isinstance(t, list)]
        tokens = sum(max(1, len(t) // 4) for t in texts) + sum(len(t) for t in arrays)
        if len(inputs) > server.embed_max_inputs:
            raise BadParam(
                f"{len(inputs):,} inputs is more than this server embeds in one request "
                f"({server.embed_max_inputs:,})",
                param="input",
                hint="split the inputs over several requests",
            )
        if tokens > server.embed_max_tokens:
            raise BadParam(
                f"the inputs hold about {tokens:,} tokens; one request may hold "
                f"{server.embed_max_tokens:,}",
                param="input",
                hint="split the inputs over several requests",
            )
        vectors = await until_disconnect(
            request,
            _embed_batches(engine, texts or arrays, server.embed_timeout),
        )
        out = []
        for i, vec in enumerate(vectors):
            emb: list[float] | str = vec
            if body.encoding_format == "base64":
                emb = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode()
            out.append(EmbeddingObject(object="embedding", index=i, embedding=emb))
        await services(request).limiter.add_tokens(principal.limit_scopes, tokens)
        usage = EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens)
        return EmbeddingList(object="list", data=out, model=body.model, usage=usage)


EMBED_BATCH = 32  # inputs per worker-thread call: the unit a cancelled request still pays


async def _embed_batches(
    engine: EmbedEngine, items: list[str] | list[list[int]], limit: float
) -> list[list[float]]:
    """Embed in batches, so a deadline or a client that left stops the work between two
    batches: one `to_thread` call cannot be interrupted, a loop over small ones can."""
    from cozy.core.errors import EngineTimeout

    out: list[list[float]] = []
    try:
        async with asyncio.timeout(limit):
            for i in range(0, len(items), EMBED_BATCH):
                batch = items[i : i + EMBED_BATCH]
                if batch and isinstance(batch[0], str):
                    out.extend(await engine.embed(batch))
                else:
                    out.extend(await engine.embed_tokens(cast(list[list[int]], batch)))
    except TimeoutError:
        raise EngineTimeout(
            f"embedding {len(items):,} inputs took longer than {limit:g}s ({len(out):,} done)",
            hint="send fewer inputs per request, or raise COZY_SERVER_EMBED_TIMEOUT",
        ) from None
    return out


async def until_disconnect(request: Request[Any, Any, Any], work: Any) -> Any:
    """Await `work`, cancelling it when the client disconnects. uvicorn does not cancel
    a handler whose client left; the ASGI `http.disconnect` message says so, and once
    the body has been read, the next `receive()` waits for exactly that."""
    task = asyncio.ensure_future(work)

    async def watch() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        task.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        return await task
    except asyncio.CancelledError:
        if task.cancelled() and watcher.done():
            from cozy.core.errors import Cancelled

            raise Cancelled("the client disconnected") from None
        raise
    finally:
        watcher.cancel()
        task.cancel()


def _model(mid: str, owner: str) -> ModelObject:
    return ModelObject(id=mid, object="model", created=0, owned_by=owner)


async def _answer(rt: Runtime, req: ChatRequest, turn: _Turn) -> Done | Failed:
    """One choice of a JSON answer: its turn's Done, or the Failed that ended it."""
    async for event in rt.orchestrator.run(req):
        turn.see(event)
        if isinstance(event, Done | Failed):
            return event
    raise EngineError("the turn ended without an answer")


async def _started(events: AsyncGenerator[ChatEvent, None], turn: _Turn) -> Started | Failed:
    async for event in events:
        turn.see(event)
        if isinstance(event, Started | Failed):
            return event
    raise EngineError("the turn ended before it started")


HEARTBEAT = 10.0  # s: an SSE comment while the model is silent (clients, proxies stay alive)


async def _merged(
    runs: list[AsyncGenerator[ChatEvent, None]], heartbeat: float = HEARTBEAT
) -> AsyncIterator[tuple[int, ChatEvent | None] | None]:
    """The events of n turns as (choice index, event), in arrival order; None ends one.
    A bare None: nothing arrived for `heartbeat` s (the body sends a keep-alive).

    Each run is pumped by its own task, so that a silent model (loading, thinking,
    stalled until `ai.idle_timeout`) cannot hold back the heartbeat; cancelling this
    closes every run, and a closed run saves its partial answer as interrupted."""
    queue: asyncio.Queue[tuple[int, ChatEvent | None]] = asyncio.Queue()

    async def pump(index: int, events: AsyncGenerator[ChatEvent, None]) -> None:
        try:
            async for event in events:
                await queue.put((index, event))
        finally:
            await events.aclose()  # stopped mid-turn: the turn saves what it has
            queue.put_nowait((index, None))

    tasks = [asyncio.create_task(pump(i, run), name="cozy-turn") for i, run in enumerate(runs)]
    try:
        open_runs = len(runs)
        while open_runs:
            try:
                async with asyncio.timeout(heartbeat):
                    item = await queue.get()
            except TimeoutError:
                yield None
                continue
            if item[1] is None:
                open_runs -= 1
            yield item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _sse(
    runs: list[AsyncGenerator[ChatEvent, None]],
    writer: ChunkWriter,
    turn: _Turn,
    admission: Admission | None = None,
) -> AsyncIterator[bytes]:
    """SSE body. A client disconnect cancels this task: the orchestrator saves the
    partial answers as interrupted. While the model is silent a comment line goes out
    every `HEARTBEAT` s (SSE clients, the OpenAI SDK's included, skip comments), so a
    streaming client never waits minutes without a byte."""
    dones: list[Done] = []
    try:
        for index in range(len(runs)):
            yield writer.first(index)
        async for item in _merged(runs):
            if item is None:
                yield b": waiting for the model\n\n"
                continue
            index, event = item
            if event is None:
                continue
            turn.see(event)
            if isinstance(event, Done):
                dones.append(event)
                yield writer.finish(
                    event, index, {"cozy": turn.degraded} if turn.degraded else None
                )
            elif isinstance(event, Failed):
                yield writer.failed(event)
                return
            else:
                chunk = writer.event(event, index)
                if chunk is not None:
                    yield chunk
        yield writer.end(usage_of(dones))
    except (asyncio.CancelledError, GeneratorExit):
        turn.status = "interrupted"
        raise
    finally:
        turn.finish()
        if admission is not None:
            admission.release()
        if turn.status != "ok":
            # runs never pumped (stopped before the first event): close them now, outside
            # the cancelled scope, so their partial answers are saved as interrupted
            loop = asyncio.get_running_loop()
            for events in runs:
                frame, running = getattr(events, "ag_frame", None), getattr(events, "ag_running", 1)
                if frame is None or running:
                    continue
                task = loop.create_task(events.aclose())
                _closing.add(task)
                task.add_done_callback(_closing.discard)


_closing: set[asyncio.Task[None]] = set()
