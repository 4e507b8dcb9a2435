"""The turns of one chat completion request: their bookkeeping (metrics, metering, the
`cozy` field of a degraded answer), a JSON choice's answer and the SSE body that merges
n streamed choices with heartbeats."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from litestar import Request

from cozy.core.errors import EngineError
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
from cozy.engines.capabilities import Admission
from cozy.runtime import Runtime
from cozy.server.chat import ChunkWriter, context_engines, usage_of
from cozy.server.deps import Services
from cozy.server.metering import ChatMeter
from cozy.server.metrics import model_label


def known_models(rt: Runtime) -> set[str]:
    """Model names that may be metric labels: what the operator configured."""
    personalities = rt.personalities.all()
    ai = rt.config.ai
    known = {"cozy", *personalities, *(f"cozy/{p}" for p in personalities), *ai.aliases}
    for spec in (ai.model, rt.settings.model):
        if spec:
            known |= {spec, spec.partition(":")[2] or spec}
    return known


class ChatTurn:
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


async def answer(rt: Runtime, req: ChatRequest, turn: ChatTurn) -> Done | Failed:
    """One choice of a JSON answer: its turn's Done, or the Failed that ended it."""
    async for event in rt.orchestrator.run(req):
        turn.see(event)
        if isinstance(event, Done | Failed):
            return event
    raise EngineError("the turn ended without an answer")


async def until_started(
    events: AsyncGenerator[ChatEvent, None], turn: ChatTurn
) -> Started | Failed:
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


async def sse(
    runs: list[AsyncGenerator[ChatEvent, None]],
    writer: ChunkWriter,
    turn: ChatTurn,
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
