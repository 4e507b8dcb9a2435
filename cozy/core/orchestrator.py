"""ChatOrchestrator: five stages, one typed event stream for every face.

prepare -> context -> tools -> generate (tool loop) -> persist, one method each.

The orchestrator schedules; it does no SQL (the store does, through core/persist.py),
no prompt assembly (core/context.py) and no budgeting (core/turn_budget.py).
Cancelling the consuming task (Esc, Ctrl-C, a client disconnect) persists the
partial answer as `interrupted`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any

from cozy.core import turn_budget
from cozy.core.context import ContextBundle, ContextService
from cozy.core.errors import CozyError, UsageError
from cozy.core.events import (
    ChatEvent,
    ContextBuilt,
    Done,
    Failed,
    MessageSaved,
    Started,
    TurnError,
)
from cozy.core.generate import Generation
from cozy.core.history import to_messages
from cozy.core.persist import TurnWriter, to_new
from cozy.core.personalities import Personality, PersonalityCatalog
from cozy.core.summaries import Summarizer
from cozy.core.toolloop import ToolRunner
from cozy.core.turn import (
    MAX_TOOL_ROUNDS,
    ChatRequest,
    Turn,
    continuation,
    full_prompt,
    log_turn,
    merge_options,
    system_prompt,
)
from cozy.core.types import Message, ToolSpec
from cozy.core.windows import ContextWindows, TokenAccounting
from cozy.engines.base import ModelRouter, Route, ToolContext
from cozy.engines.capabilities import TurnHook
from cozy.storage.store import MessageRow, NewMessage, SessionRow, Store

log = logging.getLogger("cozy.orchestrator")

__all__ = [
    "MAX_TOOL_ROUNDS",
    "ChatOrchestrator",
    "ChatRequest",
    "ModelRouter",
    "Route",
]


class ChatOrchestrator:
    def __init__(
        self,
        *,
        store: Store,
        personalities: PersonalityCatalog,
        router: ModelRouter,
        context: ContextService,
        tools: ToolRunner,
        default_personality: str = "assistant",
        recent_messages: int = 20,
        token_budget: int | None = None,
        reserve_answer_tokens: int = 1024,
        turn_hooks: Sequence[TurnHook] = (),
        windows: ContextWindows | None = None,
        accounting: TokenAccounting | None = None,
        summarizer: Summarizer | None = None,
    ) -> None:
        self.store = store
        self.personalities = personalities
        self.router = router
        self.context = context
        self.tools = tools
        self.default_personality = default_personality
        self.recent_messages = recent_messages
        self.token_budget = token_budget
        self.reserve_answer_tokens = reserve_answer_tokens
        self.writer = TurnWriter(store, turn_hooks)
        self.windows = windows or ContextWindows()
        self.accounting = accounting or TokenAccounting()
        self.summarizer = summarizer
        self._live: set[asyncio.Task[Any]] = set()  # tasks running a turn
        self._saving: set[asyncio.Future[str | None]] = set()  # interrupted answers being saved

    async def run(self, req: ChatRequest) -> AsyncGenerator[ChatEvent, None]:
        turn = Turn(req, req.request_id or f"req-{uuid.uuid4().hex[:16]}", time.perf_counter())
        turn.prompt = full_prompt(req)
        task = asyncio.current_task()
        if task is not None:
            self._live.add(task)
        try:
            async for event in self._stages(turn):
                yield event
        except (asyncio.CancelledError, GeneratorExit):
            # its own task, remembered: a stopping process (`settle`) waits for the save
            # even when the cancelled caller does not
            saving = asyncio.ensure_future(self.writer.answer(turn, "interrupted"))
            self._saving.add(saving)
            saving.add_done_callback(self._saving.discard)
            await asyncio.shield(saving)
            raise
        except UsageError as exc:  # refused: nothing is stored unless the question was
            saved = await self.writer.answer(turn, "failed", error=exc) if turn.stored else None
            yield Failed(
                error=TurnError.of(exc),
                session_id=turn.session.id if turn.session and turn.stored else None,
                message_id=saved,
            )
        except Exception as exc:  # a CozyError, or unexpected: keep what we have, report it
            if not isinstance(exc, CozyError):
                log.exception("turn failed", extra={"request_id": turn.request_id})
            saved = await self.writer.answer(turn, "failed", error=exc)
            yield Failed(
                error=TurnError.of(exc),
                session_id=turn.session.id if turn.session else None,
                message_id=saved,
            )
        finally:
            if task is not None:
                self._live.discard(task)

    @property
    def busy(self) -> int:
        """Turns running now (the server's drain and `/ready` read it)."""
        return len(self._live)

    async def settle(self, grace: float = 0.0, save_within: float = 10.0) -> int:
        """Before the store closes: let running turns finish for up to `grace` s, then
        interrupt the rest, and wait (at most `save_within` s) until every interrupted
        answer is saved. Returns how many turns were interrupted."""
        me = asyncio.current_task()
        live = self._live - {me}
        if live and grace > 0:
            await asyncio.wait(live, timeout=grace)
        stopped = [t for t in self._live - {me} if not t.done()]
        for t in stopped:
            t.cancel()
        pending = {*stopped, *self._saving}
        if pending:  # a cancelled turn starts its save on its next step: wait for both
            await asyncio.wait(pending, timeout=save_within)
            if self._saving:
                await asyncio.wait(set(self._saving), timeout=save_within)
        return len(stopped)

    def _mark(self, turn: Turn, stage: str, since: float) -> float:
        now = time.perf_counter()
        turn.timings[stage] = round((now - since) * 1000, 3)
        return now

    async def _stages(self, turn: Turn) -> AsyncIterator[ChatEvent]:
        t = time.perf_counter()
        history, new_turn = await self._prepare(turn)
        assert turn.session is not None and turn.personality is not None and turn.route
        yield Started(
            turn.request_id,
            turn.session.id,
            turn.personality.id,
            turn.route.label,
            turn.user_message_id,
            turn.route.reason,
        )
        t = self._mark(turn, "prepare", t)
        # tools are listed while the context is built: MCP servers come up meanwhile
        listing = asyncio.ensure_future(
            self.tools.available_with_problems(turn.personality, turn.req.caller)
        )
        try:
            bundle = await self._context(turn, history, new_turn)
            specs = await self._tools(turn, bundle, listing)
        except BaseException:
            listing.cancel()
            with contextlib.suppress(BaseException):
                await listing
            raise
        yield ContextBuilt(bundle.metadata)
        t = self._mark(turn, "context", t)
        t = self._mark(turn, "tools", t)
        async for event in self._generate(turn, bundle.prompt_messages(new_turn), specs):
            yield event
        t = self._mark(turn, "generate", t)
        async for event in self._persist(turn, t):
            yield event

    async def _prepare(self, turn: Turn) -> tuple[list[Message], list[Message]]:
        """Stage 1: the session, personality and model; the user's message stored.
        Returns the history to send and the turn's new messages."""
        req = turn.req
        tail = continuation(req)
        if not turn.prompt.strip() and not tail:
            raise UsageError("the prompt is empty", hint="pass a prompt as an argument or on stdin")
        session, personality, history = await self._load(turn)
        turn.route = await self.router.resolve(req.model or personality.model or session.model)
        if tail:  # a client continues after its own tool calls: no new user message
            history = history[: len(history) - len(tail)]
            await self.writer.question(turn, [to_new(m) for m in tail])
            return history, tail
        await self._refuse_early(turn)
        # stored: what the user wrote, pointing at its fragments (each text kept once);
        # sent: the whole message, as reading it back rebuilds it (`attach.assemble`)
        question = NewMessage(
            "user", req.prompt, metadata=req.input_meta, fragments=list(req.fragments)
        )
        await self.writer.question(turn, [question])
        return history, [Message("user", turn.prompt, images=list(req.images))]

    async def _refuse_early(self, turn: Turn) -> None:
        """Before anything is stored: a request that cannot be answered as asked is
        refused here, so a refusal leaves no session and no (possibly huge) message."""
        req, route, personality = turn.req, turn.route, turn.personality
        assert route is not None and personality is not None
        if req.images and await route.engine.accepts_images(route.model) is False:
            raise UsageError(
                f"{route.label} reads text only and cannot see the attached image(s)",
                hint="send images to a vision model (e.g. `-m ollama:llava` or "
                "`-m openai:gpt-4o-mini`); text files go in with `-f FILE`",
            )
        await self._window(turn)
        estimator = await self.accounting.for_model(route.model)
        turn_budget.check_question(turn, route, estimator, system_prompt(personality, req.system))

    async def _context(
        self, turn: Turn, history: list[Message], new_turn: list[Message]
    ) -> ContextBundle:
        """Stage 2: memory, profile, knowledge and history within the token budget."""
        req, route, personality = turn.req, turn.route, turn.personality
        assert turn.session is not None and route is not None and personality is not None
        limit, reserve = await self._window(turn)
        bundle: ContextBundle = await self.context.build(
            query=turn.prompt,
            user_id=req.caller.user_id,
            personality=personality,
            history=history,
            user_message=new_turn,
            token_budget=max(limit - reserve, 256),
            session_id=turn.session.id,
            use_engines=not req.no_context,
            system_prompt=system_prompt(personality, req.system),
            estimator=await self.accounting.for_model(route.model),
            summary=turn.summary.text if turn.summary else "",
        )
        if self.summarizer is not None:
            turn_budget.plan_summary(turn, bundle, route)
        turn.context_meta = bundle.metadata
        turn_budget.check_fit(turn, bundle, route)
        return bundle

    async def _window(self, turn: Turn) -> tuple[int, int]:
        """The turn's token limit and answer reserve, resolved once per turn."""
        if turn.tokens:  # already resolved before the question was stored
            return turn.tokens["limit"], turn.tokens["reserve"]
        assert turn.route is not None and turn.personality is not None
        return await turn_budget.window(
            turn,
            turn.route,
            turn.personality,
            self.windows,
            self.token_budget,
            self.reserve_answer_tokens,
        )

    async def _tools(
        self,
        turn: Turn,
        bundle: ContextBundle,
        listing: asyncio.Future[tuple[list[ToolSpec], list[str]]],
    ) -> list[ToolSpec]:
        """Stage 3: the tools this turn offers (started in prepare, awaited here)."""
        specs, problems = await listing
        if problems:  # the answer is given without those tools: say so
            bundle.metadata["degraded"] = True
            bundle.metadata["degrade_reasons"].extend(problems)
        return specs

    async def _generate(
        self, turn: Turn, convo: list[Message], specs: list[ToolSpec]
    ) -> AsyncIterator[ChatEvent]:
        """Stage 4: the answer, with the tool loop."""
        req, route, personality = turn.req, turn.route, turn.personality
        assert turn.session is not None and route is not None and personality is not None
        estimator = await self.accounting.for_model(route.model)
        options = merge_options(personality.generation_options(), req.options)
        if options.context_window is None:
            options.context_window = turn.tokens["limit"]
        estimated_prompt = estimator.messages(convo)
        ctx = ToolContext(req.caller, turn.session.id, personality.id, turn.request_id)
        ctx.extra["log_level"] = req.tool_log_level
        # images a tool returns go to a model that sees them (core/toolmedia.py)
        ctx.extra["accepts_images"] = lambda: route.engine.accepts_images(route.model)
        ctx.extra["sample"] = self.tools.sampler(route, req.approver, ctx)
        if req.elicitor is not None:
            ctx.extra["elicit"] = req.elicitor
        gen = Generation(
            convo,
            server_tools=specs,
            client_tools=req.client_tools,
            rounds=min(req.max_tool_rounds, self.tools.max_rounds),  # engines.yaml may lower it
        )
        async for event in gen.run(turn, route, options, self.tools, ctx):
            yield event
        turn.tokens.update(estimated_prompt=estimated_prompt, reported_prompt=gen.reported_prompt)
        if gen.reported_prompt and not gen.offered:  # tool schemas are not in our estimate
            await self.accounting.observe(route.model, estimated_prompt, gen.reported_prompt)

    async def _persist(self, turn: Turn, since: float) -> AsyncIterator[ChatEvent]:
        """Stage 5: the answer saved; the after-turn hooks told; `Done`."""
        assert turn.session is not None and turn.route is not None
        saved = await self.writer.answer(turn, "complete")
        self._mark(turn, "persist", since)
        if saved:
            yield MessageSaved(saved, "assistant", "complete")
        turn.timings["total"] = round((time.perf_counter() - turn.started) * 1000, 3)
        log_turn(turn, "complete")
        yield Done(
            session_id=turn.session.id,
            message_id=saved,
            text="".join(turn.text),
            status="complete",
            finish_reason=turn.finish_reason or "stop",
            model=turn.route.label,
            usage=turn.usage.to_dict(),
            timings=dict(turn.timings),
            tool_calls=[
                {"id": c.id, "name": c.name, "arguments": c.arguments} for c in turn.client_calls
            ],
            tokens=dict(turn.tokens),
        )

    async def _load(self, turn: Turn) -> tuple[SessionRow, Personality, list[Message]]:
        """The session (stored with the first message when new), personality and the
        history window, minus what the session's summary covers."""
        req = turn.req
        user_id = req.caller.user_id
        await self.store.ensure_user(user_id, role=req.caller.role)
        session: SessionRow | None = None
        want = 0 if req.history is not None else self.recent_messages + 1
        rows: list[MessageRow] | None = None
        if req.session == "last":
            session = await self.store.last_session(user_id)
        elif req.session != "new":  # the session and its window in one read
            session, rows = await self.store.session_window(req.session, user_id, want)
        pid = req.personality or (session.personality_id if session else None)
        personality = self.personalities.get(pid or self.default_personality)
        created = session is None
        if session is None:  # stored with the user's message (one transaction)
            session = self.store.new_session_row(user_id, personality.id, model=req.model)
            turn.session_unsaved = True
        turn.session, turn.personality = session, personality
        if req.history is not None:
            return session, personality, list(req.history)
        if created:  # a session made just now has no messages and no summary yet
            return session, personality, []
        # one row more than we send tells whether older messages exist (no full scan)
        if rows is None:
            rows = await self.store.recent_messages(session.id, want)
        turn.older_exists = len(rows) > self.recent_messages
        rows = rows[-self.recent_messages :] if self.recent_messages else []
        turn.window_first_id = rows[0].id if rows else None
        if self.summarizer is not None:
            turn.summary = await self.summarizer.summaries.latest(session.id)
            if turn.summary is not None:  # what the summary covers is not sent again
                rows = [r for r in rows if r.id > turn.summary.last_message_id]
        return session, personality, to_messages(rows)
