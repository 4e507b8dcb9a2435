"""Running one chat turn: consume the orchestrator's events and render them.

The turn runs in an exclusive worker. Esc cancels the worker; the orchestrator
(closed through `aclosing`) persists the partial answer as interrupted, and the
prompt text comes back when nothing was answered yet.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from cozy.core.types import log_at_least
from cozy.tui.heap import quiet_gc
from cozy.tui.host import TurnExtras
from cozy.tui.screens.approval import ApprovalScreen
from cozy.tui.widgets.messages import ChatLog, MessageView, ToolCallView

if TYPE_CHECKING:
    from collections.abc import Iterable

    from textual.worker import Worker

    from cozy.core.events import ChatEvent, Started
    from cozy.core.toolloop import Decision
    from cozy.core.types import ToolCall, ToolSpec
    from cozy.engines.base import ToolContext
    from cozy.tui.host import Host


class TurnState:
    def __init__(self, prompt: str) -> None:
        self.prompt = prompt
        self.answer: MessageView | None = None
        self.yours: MessageView | None = None
        self.got_text = False
        self.session_id: str | None = None
        self.fragments: list[Any] = []  # the message's files (/file, @path)


class TurnRunner:
    """Runs one turn at a time in the app's exclusive "turn" worker and renders it."""

    def __init__(self, host: Host) -> None:
        self.host = host

    def start(self, text: str, extras: TurnExtras | None = None) -> Worker[None]:
        return self.host.run_worker(
            self.run(text, extras), group="turn", exclusive=True, exit_on_error=False
        )

    def cancel(self, workers: Iterable[Worker[Any]]) -> bool:
        """Cancel the running turn (Esc); False when none runs."""
        for worker in workers:
            if worker.group == "turn" and worker.is_running:
                worker.cancel()
                return True
        return False

    async def run(self, text: str, extras: TurnExtras | None = None) -> None:
        from cozy.core.orchestrator import ChatRequest
        from cozy.core.types import Caller

        host, st = self.host, self.host.state
        await st.ready.wait()
        views = host.views
        chat, status = views.chat, views.status
        extras = extras or TurnExtras()
        state = TurnState(text)
        st.busy = True
        status.set(running=True)
        fragments, meta = list(extras.fragments), None
        shown = text
        if fragments or extras.images:
            from cozy.core.inputs import Inputs

            got = Inputs(fragments, list(extras.images))
            shown, meta = got.prompt(text), got.metadata()  # shown as the model sees it
        state.yours = await chat.add_message("user", shown)
        state.yours.typed, state.yours.fragments = text, fragments
        state.fragments = fragments
        req = ChatRequest(
            prompt=text,
            caller=Caller(user_id=host.settings.user, role="admin", face="tui"),
            session=st.session_id or "new",
            personality=extras.personality or st.personality,
            model=extras.model or st.model,
            system=extras.system,
            options=extras.options,
            approver=self._approver,
            elicitor=self._elicitor,
            fragments=fragments,
            images=list(extras.images),
            input_meta=meta,
        )
        try:
            with quiet_gc():  # no full GC pass while the answer streams (see heap.py)
                async with contextlib.aclosing(host.runtime.orchestrator.run(req)) as events:
                    async for event in events:
                        await self._render_event(event, state, chat)
        except asyncio.CancelledError:
            note = "interrupted by esc; partial answer saved"
            await self._end_answer(state, chat, "interrupted", note)
            if not state.got_text:
                prompt = views.prompt
                if not prompt.text.strip():
                    prompt.load_text(text)
                    prompt.move_cursor(prompt.document.end)
                    host.attach_again(list(extras.fragments))  # and its files with it
            raise
        finally:
            st.busy = False
            status.set(running=False)
            if state.session_id:
                host.refresh_sessions()

    async def _tiny_model_notice(self, chat: ChatLog, model: str) -> None:
        """Once: the bundled model is small, and how to get a better one."""
        notice = self.host.runtime.models.tiny_notice(model)
        if notice:
            await chat.add_notice(f"ℹ {notice}")

    async def _render_event(self, event: ChatEvent, state: TurnState, chat: ChatLog) -> None:
        from cozy.core.events import (
            ContextBuilt,
            Done,
            Failed,
            Started,
            TextDelta,
        )

        if isinstance(event, TextDelta):  # the hot path: hundreds a second, no DOM queries
            if state.answer is None:
                state.answer = await chat.add_message("assistant")
            state.got_text = True
            state.answer.append(event.text)
            return
        if await self._render_tool_event(event, state, chat):
            return
        host, st = self.host, self.host.state
        status = host.views.status
        if isinstance(event, Started):
            self._started(event, state)
        elif isinstance(event, ContextBuilt):
            host.views.context.show(event.metadata)
            status.set(degraded=bool(event.metadata.get("degraded")))
        elif isinstance(event, Done):
            usage = event.usage or {}
            total = event.timings.get("total")
            st.tokens += int(usage.get("total_tokens") or 0)
            note = _done_note(event.usage, total)
            if state.answer is None and not event.text:
                state.answer = await chat.add_message("assistant", "(empty answer)")
            await self._end_answer(state, chat, "complete", note)
            status.set(tokens=st.tokens, latency_ms=total, model=event.model)
            await self._tiny_model_notice(chat, event.model)
        elif isinstance(event, Failed):
            await self._end_answer(state, chat, "failed")
            message = event.error.message
            await chat.add_message("error", message)
            st.last_error = message
            prompt = host.views.prompt
            if not state.got_text and not prompt.text.strip():
                prompt.load_text(state.prompt)
                host.attach_again(state.fragments)  # its files go with it again

    def _started(self, event: Started, state: TurnState) -> None:
        host, st = self.host, self.host.state
        state.session_id = event.session_id
        if state.yours is not None:
            state.yours.message_id = event.user_message_id
        if st.session_id != event.session_id:
            st.session_id = event.session_id
            host.refresh_sessions()
        host.views.status.set(
            model=event.model,
            personality=event.personality_id,
            why=auto_reason(event.provider_reason),
        )

    async def _render_tool_event(self, event: ChatEvent, state: TurnState, chat: ChatLog) -> bool:
        """A tool call's line: requested, waiting for approval, progress, result."""
        from cozy.core.events import (
            ToolApprovalNeeded,
            ToolCallRequested,
            ToolLog,
            ToolProgress,
            ToolResult,
        )

        if isinstance(event, ToolCallRequested):
            await self._end_answer(state, chat, "complete")
            c = event.call
            await chat.add(ToolCallView(c.id, c.name, c.arguments, event.level))
        elif isinstance(event, ToolApprovalNeeded):
            view = chat.tool_view(event.call.id)
            if view is not None:
                view.waiting()
        elif isinstance(event, ToolProgress):
            view = chat.tool_view(event.call_id)
            if view is not None:
                view.progress(event.progress, event.total, event.message)
        elif isinstance(event, ToolLog):
            view = chat.tool_view(event.call_id)
            if view is not None:
                view.add_log(event.server, event.level, event.text)
            if log_at_least(event.level, "error"):  # worth a look even scrolled away
                self.host.notify(
                    f"{event.server}: {event.text[:200]}", title=event.level, severity="error"
                )
        elif isinstance(event, ToolResult):
            view = chat.tool_view(event.call_id)
            if view is not None:
                view.done(
                    event.content,
                    is_error=event.is_error,
                    duration_ms=event.duration_ms,
                    decision=event.decision,
                    media=event.media,
                )
        else:
            return False
        return True

    async def _end_answer(
        self, state: TurnState, chat: ChatLog, status: str, note: str = ""
    ) -> None:
        answer, state.answer = state.answer, None
        if answer is not None:
            await answer.finish(status, note)
        elif status == "interrupted":
            await chat.add_notice(f"⏹ {note}", "warning")

    async def _approver(self, call: ToolCall, spec: ToolSpec, ctx: ToolContext) -> Decision:
        """Open the approval modal and wait for the user's decision."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str] = loop.create_future()

        def decided(value: str | None) -> None:
            if not future.done():
                future.set_result(value or "deny")

        screen = ApprovalScreen(spec.name, spec.level, call.arguments, ctx.personality_id or "")
        self.host.push_screen(screen, callback=decided)
        try:
            decision = await future
        except asyncio.CancelledError:
            if screen.is_attached:
                screen.dismiss("deny")
            raise
        return "once" if decision == "once" else "always" if decision == "always" else "deny"

    async def _elicitor(
        self, server: str, message: str, schema: dict[str, Any]
    ) -> tuple[str, dict[str, Any] | None]:
        """An MCP server's form during a tool call: a modal; Esc cancels."""
        from cozy.tui.screens.elicitation import ElicitationScreen

        future: asyncio.Future[tuple[str, dict[str, Any] | None]] = (
            asyncio.get_running_loop().create_future()
        )
        screen = ElicitationScreen(server, message, schema, answer=future)
        self.host.push_screen(screen)
        try:
            return await future
        except asyncio.CancelledError:
            screen.finish(("cancel", None))
            raise


def auto_reason(reason: str) -> str:
    """The status bar says why only for the `auto` choice (a provider set by hand needs none)."""
    from cozy.runtime.models import automatic_reason

    return reason if automatic_reason(reason) else ""


def _done_note(usage: dict[str, Any] | None, total_ms: float | None) -> str:
    parts = []
    if usage and usage.get("completion_tokens"):
        parts.append(f"{usage['completion_tokens']} tokens")
    if total_ms is not None:
        parts.append(f"{total_ms / 1000:.1f} s")
    return " · ".join(parts)
