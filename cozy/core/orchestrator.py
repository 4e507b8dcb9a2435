"""ChatOrchestrator: five stages, one typed event stream for every face.

prepare -> context -> tools -> generate (tool loop) -> persist.

The orchestrator schedules; it does no SQL (the store does) and no prompt
assembly (the context service does). Cancelling the consuming task (Esc, Ctrl-C,
a client disconnect) persists the partial answer as `interrupted`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any

from cozy.core.context import ContextBundle, ContextService
from cozy.core.errors import ContextTooLarge, CozyError, UsageError
from cozy.core.events import (
    ChatEvent,
    ContextBuilt,
    Done,
    Failed,
    MessageSaved,
    Started,
    TextDelta,
    ToolCallRequested,
    TurnError,
)
from cozy.core.history import to_messages
from cozy.core.personalities import Personality, PersonalityCatalog
from cozy.core.summaries import Summarizer
from cozy.core.toolloop import ToolRunner
from cozy.core.turn import (
    MAX_TOOL_ROUNDS,
    ChatRequest,
    Turn,
    TurnSink,
    answer_every_call,
    brief_context,
    continuation,
    log_turn,
    merge_options,
    summary_job,
    system_prompt,
    title_of,
    to_new,
)
from cozy.core.types import Message, ToolCall
from cozy.core.windows import ContextWindows, TokenAccounting
from cozy.engines.base import ModelRouter, Route, ToolContext
from cozy.storage.store import MessageRow, NewMessage, SessionRow, Store

log = logging.getLogger("cozy.orchestrator")

__all__ = ["MAX_TOOL_ROUNDS", "ChatOrchestrator", "ChatRequest", "ModelRouter", "Route", "TurnSink"]


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
        sinks: Sequence[TurnSink] = (),
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
        self.sinks = list(sinks)
        self.windows = windows or ContextWindows()
        self.accounting = accounting or TokenAccounting()
        self.summarizer = summarizer
        self._live: set[asyncio.Task[Any]] = set()  # tasks running a turn
        self._saving: set[asyncio.Future[str | None]] = set()  # interrupted answers being saved

    async def run(self, req: ChatRequest) -> AsyncGenerator[ChatEvent, None]:
        turn = Turn(req, req.request_id or f"req-{uuid.uuid4().hex[:16]}", time.perf_counter())
        task = asyncio.current_task()
        if task is not None:
            self._live.add(task)
        try:
            async for event in self._stages(turn):
                yield event
        except (asyncio.CancelledError, GeneratorExit):
            # its own task, remembered: a stopping process (`settle`) waits for the save
            # even when the cancelled caller does not
            saving = asyncio.ensure_future(self._persist(turn, "interrupted"))
            self._saving.add(saving)
            saving.add_done_callback(self._saving.discard)
            await asyncio.shield(saving)
            raise
        except UsageError as exc:  # refused: nothing is stored unless the question was
            saved = await self._persist(turn, "failed", error=exc) if turn.stored else None
            yield Failed(
                error=TurnError.of(exc),
                session_id=turn.session.id if turn.session and turn.stored else None,
                message_id=saved,
            )
        except Exception as exc:  # a CozyError, or unexpected: keep what we have, report it
            if not isinstance(exc, CozyError):
                log.exception("turn failed", extra={"request_id": turn.request_id})
            saved = await self._persist(turn, "failed", error=exc)
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

    async def _stages(  # noqa: C901 - one method per stage: #17 (split, then superseded)
        self, turn: Turn
    ) -> AsyncIterator[ChatEvent]:
        req = turn.req
        t = time.perf_counter()
        # 1. prepare
        tail = continuation(req)
        if not req.prompt.strip() and not tail:
            raise UsageError("the prompt is empty", hint="pass a prompt as an argument or on stdin")
        session, personality, history = await self._prepare(turn)
        route = await self.router.resolve(req.model or personality.model or session.model)
        turn.route = route
        if tail:  # a client continues after its own tool calls: no new user message
            history = history[: len(history) - len(tail)]
            new_turn: list[Message] = tail
            first = [to_new(m) for m in tail]
        else:
            await self._refuse_early(turn, route, personality)
            new_turn = [Message("user", req.prompt, images=list(req.images))]
            first = [NewMessage("user", req.prompt, metadata=req.input_meta)]
        create = session if turn.session_unsaved else None
        turn.user_message_id = (
            await self.store.add_messages(
                session.id, first, touch_title=title_of(req.prompt), create=create
            )
        )[0]
        turn.session_unsaved = False
        yield Started(
            turn.request_id,
            session.id,
            personality.id,
            route.label,
            turn.user_message_id,
            route.reason,
        )
        t = self._mark(turn, "prepare", t)
        # 3. tools, started first: MCP servers come up while the context is built
        tools_task = asyncio.ensure_future(
            self.tools.available_with_problems(personality, req.caller)
        )
        try:
            bundle = await self._context(turn, route, personality, history, new_turn)
            specs, tool_problems = await tools_task
        except BaseException:
            tools_task.cancel()
            with contextlib.suppress(BaseException):
                await tools_task
            raise
        if tool_problems:  # the answer is given without those tools: say so
            bundle.metadata["degraded"] = True
            reasons = bundle.metadata.setdefault("degrade_reasons", [])
            reasons.extend(tool_problems)
        turn.context_meta = bundle.metadata
        yield ContextBuilt(bundle.metadata)
        t = self._mark(turn, "context", t)
        server_specs = {s.name: s for s in specs}
        client_specs = {s.name: s for s in req.client_tools}
        offered = [*specs, *req.client_tools]
        t = self._mark(turn, "tools", t)
        # 4. generate, with the tool loop
        limit = turn.tokens["limit"]
        estimator = await self.accounting.for_model(route.model)
        convo = bundle.prompt_messages(new_turn)
        options = merge_options(personality.generation_options(), req.options)
        if options.context_window is None:
            options.context_window = limit
        estimated_prompt = estimator.messages(convo)
        reported_prompt = 0
        ctx = ToolContext(req.caller, session.id, personality.id, turn.request_id)
        ctx.extra["sample"] = self.tools.sampler(route, req.approver, ctx)
        if req.elicitor is not None:
            ctx.extra["elicit"] = req.elicitor
        rounds = min(req.max_tool_rounds, self.tools.max_rounds)  # engines.yaml may lower it
        for _round in range(max(1, rounds) + 1):
            calls: list[ToolCall] = []
            round_text: list[str] = []
            tools_now = offered if _round < rounds else []
            async for chunk in route.engine.chat_stream(
                convo, model=route.model, tools=tools_now or None, options=options
            ):
                if chunk.delta:
                    round_text.append(chunk.delta)
                    turn.text.append(chunk.delta)
                    yield TextDelta(chunk.delta)
                if chunk.tool_calls:
                    calls.extend(chunk.tool_calls)
                if chunk.finish_reason:
                    turn.finish_reason = chunk.finish_reason
                turn.usage.add(chunk.usage)
                if _round == 0 and chunk.usage is not None:
                    reported_prompt = chunk.usage.prompt_tokens
            if not calls:
                break
            assistant = Message("assistant", "".join(round_text), tool_calls=calls)
            convo.append(assistant)
            turn.pending.append(to_new(assistant))
            client = [c for c in calls if c.name in client_specs and c.name not in server_specs]
            if client:  # client-side tools: hand them back to the caller and stop
                for c in client:
                    yield ToolCallRequested(c, None, client_side=True)
                turn.client_calls = client
                turn.finish_reason = "tool_calls"
                break
            for c in calls:
                spec = server_specs.get(c.name)
                yield ToolCallRequested(c, spec.level if spec else None)
            results: list[Message] = []
            async for event in self.tools.run(calls, server_specs, ctx, req.approver, results):
                yield event
            convo.extend(results)
            turn.pending.extend(to_new(m) for m in results)
            if options.tool_choice not in (None, "auto", "none"):
                # the forced call is made: the next rounds may answer in text (forced in
                # every round, a model calls tools until the round limit)
                options = dataclasses.replace(options, tool_choice="auto")
        turn.tokens.update(estimated_prompt=estimated_prompt, reported_prompt=reported_prompt)
        if reported_prompt and not offered:  # tool schemas are not in our estimate
            await self.accounting.observe(route.model, estimated_prompt, reported_prompt)
        t = self._mark(turn, "generate", t)
        # 5. persist
        saved = await self._persist(turn, "complete")
        self._mark(turn, "persist", t)
        if saved:
            yield MessageSaved(saved, "assistant", "complete")
        turn.timings["total"] = round((time.perf_counter() - turn.started) * 1000, 3)
        log_turn(turn, "complete")
        yield Done(
            session_id=session.id,
            message_id=saved,
            text="".join(turn.text),
            status="complete",
            finish_reason=turn.finish_reason or "stop",
            model=route.label,
            usage=turn.usage.to_dict(),
            timings=dict(turn.timings),
            tool_calls=[
                {"id": c.id, "name": c.name, "arguments": c.arguments} for c in turn.client_calls
            ],
            tokens=dict(turn.tokens),
        )

    async def _context(
        self,
        turn: Turn,
        route: Route,
        personality: Personality,
        history: list[Message],
        new_turn: list[Message],
    ) -> ContextBundle:
        """Stage 2: memory, profile, knowledge and history within the token budget."""
        req = turn.req
        assert turn.session is not None
        if turn.tokens:  # already resolved before the question was stored
            limit, reserve = turn.tokens["limit"], turn.tokens["reserve"]
        else:
            limit, reserve = await self._window(turn, route, personality)
        estimator = await self.accounting.for_model(route.model)
        bundle: ContextBundle = await self.context.build(
            query=req.prompt,
            user_id=req.caller.user_id,
            personality=personality,
            history=history,
            user_message=new_turn,
            token_budget=max(limit - reserve, 256),
            session_id=turn.session.id,
            use_engines=not req.no_context,
            system_prompt=system_prompt(personality, req.system),
            estimator=estimator,
            summary=turn.summary.text if turn.summary else "",
        )
        await self._maybe_summarize(turn, bundle, route)
        turn.context_meta = bundle.metadata
        if bundle.token_budget.get("over_budget"):
            self._over_budget(turn, bundle, route, limit, reserve)
        return bundle

    async def _refuse_early(self, turn: Turn, route: Route, personality: Personality) -> None:
        """Before anything is stored: a request that cannot be answered as asked is
        refused here, so a refusal leaves no session and no (possibly huge) message."""
        req = turn.req
        if req.images and route.engine.supports_images is False:
            raise UsageError(
                f"{route.label} reads text only and cannot see the attached image(s)",
                hint="send images to a vision model (e.g. `-m ollama:llava` or "
                "`-m openai:gpt-4o-mini`); text files go in with `-f FILE`",
            )
        limit, reserve = await self._window(turn, route, personality)
        if turn.tokens["window_source"] == "default":
            return  # unknown window: `_over_budget` sends it and lets the server decide
        estimator = await self.accounting.for_model(route.model)
        # what no trimming can remove: the personality's prompt and the question
        needed = estimator.messages(
            [Message("system", system_prompt(personality, req.system)), Message("user", req.prompt)]
        )
        budget = max(limit - reserve, 256)
        if needed > budget:
            raise self._too_large(turn, route, needed, budget, limit, reserve)

    def _over_budget(
        self, turn: Turn, bundle: ContextBundle, route: Route, limit: int, reserve: int
    ) -> None:
        """Refuse a prompt that cannot fit, with the fix that works for why it cannot;
        with an unknown window, send it and let the server decide (no guessed cap)."""
        window, source = turn.tokens["window"], turn.tokens["window_source"]
        if source == "default":
            bundle.metadata["degraded"] = True
            bundle.metadata.setdefault("degrade_reasons", []).append(
                f"the context window of {route.label} is unknown (assumed {window:,} tokens "
                "to trim history); set it with `ai.context_windows` in engines.yaml"
            )
            return
        raise self._too_large(
            turn,
            route,
            bundle.token_budget["used"],
            bundle.token_budget["limit"],
            limit,
            reserve,
        )

    def _too_large(
        self, turn: Turn, route: Route, used: int, budget: int, limit: int, reserve: int
    ) -> ContextTooLarge:
        """The refusal, naming the fix that works for why the prompt cannot fit."""
        window, source = turn.tokens["window"], turn.tokens["window_source"]
        if limit < window:  # cozy's own cap, not the model, is what is too small
            hint = (
                f"raise `context.token_budget` in engines.yaml (now {limit:,}; removing it "
                f"makes the budget the model's window, {window:,}) or the personality's "
                "token_budget"
            )
        else:
            hint = (
                "shorten the prompt or add the text with `cozy knowledge add`; if the model "
                f"takes more than {window:,} tokens, say so in engines.yaml: "
                f"`ai: {{context_windows: {{'{route.label}': N}}}}`"
            )
        return ContextTooLarge(
            f"the prompt needs about {used:,} tokens but the context budget is "
            f"{budget:,} ({route.label} window {window:,} from "
            f"{source}, cozy's limit {limit:,}, minus {reserve:,} reserved for the answer)",
            hint=hint,
        )

    async def _window(self, turn: Turn, route: Route, personality: Personality) -> tuple[int, int]:
        """The token limit for this turn and what is reserved for the answer."""
        provider = route.label.split(":", 1)[0]
        window, source = await self.windows.resolve(route.engine, provider, route.model)
        if personality.context_window:
            window, source = personality.context_window, "personality"
        limit = min(window, personality.token_budget or self.token_budget or window)
        reserve = min(self.reserve_answer_tokens, limit // 4)
        turn.tokens = {
            "window": window,
            "window_source": source,
            "limit": limit,
            "reserve": reserve,
        }
        return limit, reserve

    async def _maybe_summarize(self, turn: Turn, bundle: ContextBundle, route: Route) -> None:
        """Queue a summary job when messages left out of the prompt are not summarised."""
        if self.summarizer is None or turn.session is None:
            return
        meta = bundle.metadata
        if turn.summary is not None:
            meta["summary"] = {
                "id": turn.summary.id,
                "messages": turn.summary.message_count,
                "used": bool(bundle.summary),
            }
        dropped = bundle.token_budget.get("trimmed", {}).get("messages", 0)
        covered = turn.summary.last_message_id if turn.summary else ""
        gap = turn.older_exists and (turn.window_first_id or "") > covered
        if gap or dropped:  # queued in the persist transaction (one write per turn)
            turn.summary_job = summary_job(
                turn.session.id,
                turn.req.caller.user_id,
                route.label,
                keep_recent=len(bundle.recent_messages),
            )
            meta["summary_requested"] = True

    async def _prepare(self, turn: Turn) -> tuple[SessionRow, Personality, list[Message]]:
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

    async def _persist(
        self, turn: Turn, status: str, error: BaseException | None = None
    ) -> str | None:
        """Save the assistant's answer (complete, interrupted or failed) and tell sinks."""
        if turn.session is not None and turn.session_unsaved:  # failed before the first write
            turn.session_unsaved = False
            with contextlib.suppress(CozyError):  # the turn's own error is the one to report
                await self.store.insert_session(turn.session)
        if turn.session is None or turn.user_message_id is None or turn.persisted:
            return None
        turn.persisted = True
        session = turn.session
        text = "".join(turn.text)
        meta: dict[str, Any] = {
            "request_id": turn.request_id,
            "model": turn.route.label if turn.route else None,
            "timings": dict(turn.timings),
            "context": brief_context(turn.context_meta),
            "tokens": dict(turn.tokens),
        }
        if error is not None:
            meta["error"] = str(error)
        final = NewMessage(
            "assistant",
            text,
            status=status,
            metadata=meta,
            prompt_tokens=turn.usage.prompt_tokens or None,
            completion_tokens=turn.usage.completion_tokens or None,
            latency_ms=round((time.perf_counter() - turn.started) * 1000, 2),
        )
        pending = answer_every_call(turn.pending)
        # an answer that said nothing after its tool rounds is not a message (the rounds
        # and their results are); one with no rounds keeps the turn's status
        items = [*pending, final] if text or not pending else pending
        turn.pending = []
        also = [turn.summary_job] if turn.summary_job is not None else []
        turn.summary_job = None
        ids = await self.store.add_messages(session.id, items, also=also)
        if items[-1] is not final:
            ids = [*ids, ""]  # no final answer row; callers get no message id
        if status != "complete":
            log_turn(turn, status)
        if (
            status == "complete"
            and self.sinks
            and turn.personality
            and turn.req.prompt.strip()
            and ids[-1]
        ):
            user_msg = Message("user", turn.req.prompt)
            for sink in self.sinks:
                await sink.turn_saved(
                    user_id=turn.req.caller.user_id,
                    session_id=session.id,
                    personality_id=turn.personality.id,
                    message_ids=[turn.user_message_id, ids[-1]],
                    messages=[user_msg, Message("assistant", text)],
                )
        return ids[-1] or None
