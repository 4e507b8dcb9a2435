"""CozyApp: the Textual terminal app (`cozy chat`).

Layout: sessions sidebar | chat log + prompt | context panel (toggle), status bar.
The app renders the orchestrator's event stream and calls runtime/store methods;
it never touches SQL, prompts or provider SDKs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from textual import events, work
from textual.binding import Binding
from textual.containers import Vertical

from cozy.tui.actions import ActionsMixin
from cozy.tui.heap import IdleCollector, release_full_gc, settle_heap
from cozy.tui.history import render_history
from cozy.tui.ingest import IngestMixin
from cozy.tui.turn import TurnMixin
from cozy.tui.widgets.context_panel import ContextPanel
from cozy.tui.widgets.mdbody import warm_up
from cozy.tui.widgets.messages import ChatLog
from cozy.tui.widgets.prompt import PromptArea
from cozy.tui.widgets.sidebar import Sidebar
from cozy.tui.widgets.status import StatusBar

if TYPE_CHECKING:
    from textual.app import ComposeResult

    from cozy.runtime import Runtime
    from cozy.settings import Settings

log = logging.getLogger("cozy.tui")

MODEL_CHECK_TIMEOUT = 5.0


class CozyApp(TurnMixin, ActionsMixin, IngestMixin):
    CSS_PATH = "cozy.tcss"
    TITLE = "cozy"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [  # noqa: RUF012 - Textual's convention
        Binding("escape", "cancel", "Cancel answer", id="app.cancel"),
        Binding("f1", "help", "Help", id="app.help"),
        Binding("ctrl+n", "new_session", "New session", id="app.new_session"),
        Binding("f2", "rename_session", "Rename session", id="app.rename"),
        Binding("f3,ctrl+o", "toggle_context", "Context panel", id="app.context"),
        Binding("f4", "pick_personality", "Personality", id="app.personality"),
        Binding("f5", "pick_model", "Model", id="app.model"),
        Binding("ctrl+b", "toggle_sidebar", "Sessions sidebar", id="app.sidebar"),
        Binding("ctrl+t", "push_to_talk", "Push to talk", id="app.talk"),
        Binding("f8", "copy_code", "Copy last code block", id="app.copy"),
        Binding("ctrl+q", "quit", "Quit", id="app.quit"),
    ]

    def __init__(
        self,
        settings: Settings,
        *,
        session: str | None = None,
        personality: str | None = None,
        model: str | None = None,
        runtime: Runtime | None = None,
        check_model: bool = True,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.start_session = session
        self.personality: str = personality or settings.personality
        self.model: str | None = model or settings.model
        self._given_runtime = runtime
        self._runtime: Runtime | None = runtime
        self.check_model = check_model
        self.ready = asyncio.Event()
        self.session_id: str | None = None
        self.busy = False
        self.tokens = 0
        self.last_error: str | None = None
        self.model_problem: str | None = None
        self.deleted: list[str] = []
        self.startup_error: str | None = None
        self.copied: str | None = None
        self.recorder: Any = None
        self.voice_problem: str | None = None
        self.idle_gc = IdleCollector()  # a turn's garbage is collected once you pause

    @property
    def runtime(self) -> Runtime:
        assert self._runtime is not None, "the runtime is not open yet"
        return self._runtime

    def compose(self) -> ComposeResult:
        yield Sidebar()
        with Vertical(id="main"):
            yield ChatLog(id="chat")
            yield PromptArea()
        yield ContextPanel()
        yield StatusBar()

    async def on_mount(self) -> None:
        from cozy.core.errors import CozyError
        from cozy.tui.config import load_tui_config

        try:
            cfg = load_tui_config(self.settings.config_dir)
        except CozyError as exc:
            self.exit(return_code=exc.exit_code, message=f"error: {exc}")
            return
        if cfg.keys:
            self.set_keymap(cfg.keys)
        if cfg.theme:
            self.theme = cfg.theme
        self.query_one(ContextPanel).display = False
        self.query_one(StatusBar).set(personality=self.personality, model=self.model or "default")
        self.query_one(PromptArea).focus()
        self.set_interval(0.5, self._collect_when_idle)
        self._stop_on_signals()
        self.start()

    def _stop_on_signals(self) -> None:
        """SIGTERM / SIGHUP (a closed terminal, a logout, `kill`) stop like Esc then quit:
        the answer in progress is cancelled and saved as interrupted before the runtime
        closes (`on_unmount` waits for the save), instead of the process dying mid-write."""
        import signal

        loop = asyncio.get_running_loop()
        for name in ("SIGTERM", "SIGHUP"):
            sig = getattr(signal, name, None)
            if sig is None:
                continue
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self._stopped_by, int(sig))

    def _stopped_by(self, signum: int) -> None:
        self.action_cancel()
        self.exit(return_code=128 + signum)

    def _collect_when_idle(self) -> None:
        self.idle_gc.poll(self.busy)

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key):
            self.idle_gc.touch()
        await super().on_event(event)

    @work(exclusive=True, group="start", exit_on_error=False)
    async def start(self) -> None:
        from cozy.core.errors import CozyError
        from cozy.runtime import Runtime

        chat = self.query_one(ChatLog)
        try:
            if self._runtime is None:
                self._runtime = await Runtime.open(self.settings)
            rt = self.runtime
            rt.start_worker()  # memory, profile, summaries: background jobs run while you chat
            try:
                self.personality = rt.personalities.get(self.personality).id
            except CozyError as exc:
                await chat.add_notice(f"⚠ {exc}", "error")
                self.personality = rt.personalities.get(self.settings.personality).id
            await self._open_start_session()
        except CozyError as exc:
            self.startup_error = str(exc)
            self.exit(return_code=exc.exit_code, message=f"error: {exc}")
            return
        warm_up()  # the Markdown renderer's imports happen now, not during the first answer
        settle_heap()  # full collections stop walking start-up's objects (see heap.py)
        self.ready.set()
        self.query_one(StatusBar).set(personality=self.personality)
        self.refresh_sessions()
        if self.check_model:
            self.probe_model()

    async def _open_start_session(self) -> None:
        from cozy.core.errors import CozyError

        ref = self.start_session
        if not ref or ref == "new":
            return
        store, user = self.runtime.store, self.settings.user
        try:
            row = (
                await store.last_session(user)
                if ref == "last"
                else await store.get_session(ref, user_id=user)
            )
        except CozyError as exc:
            await self.query_one(ChatLog).add_notice(f"⚠ {exc}; starting a new session", "error")
            return
        if row is None:
            await self.query_one(ChatLog).add_notice("no sessions yet; starting a new one", "info")
            return
        await self.load_session(row.id)

    async def load_session(self, session_id: str) -> None:
        """Show a stored session (the last 200 messages) and make it current."""
        rt = self.runtime
        row = await rt.store.get_session(session_id, user_id=self.settings.user)
        chat = self.query_one(ChatLog)
        await chat.reset()
        self.session_id = row.id
        self.personality = row.personality_id
        if row.model:
            self.model = row.model
        await render_history(chat, rt.store, row.id)
        self.query_one(StatusBar).set(personality=self.personality, model=self.model or "default")

    @work(exclusive=True, group="probe", exit_on_error=False)
    async def probe_model(self) -> None:
        """Say early (and how to fix it) when no model is reachable; browsing still works."""
        from cozy.core.errors import CozyError

        rt = self.runtime
        try:
            route = await rt.router.resolve(self.model)
            await asyncio.wait_for(route.engine.list_models(), MODEL_CHECK_TIMEOUT)
        except (CozyError, OSError, TimeoutError) as exc:
            self.model_problem = str(exc)
        except Exception as exc:  # any provider failure: report it, never crash
            self.model_problem = f"{type(exc).__name__}: {exc}"
        else:
            from cozy.tui.turn import auto_reason

            self.query_one(StatusBar).set(model=route.label, why=auto_reason(route.reason))
            return
        await self.query_one(ChatLog).add_notice(
            f"⚠ No model reachable: {self.model_problem}\n"
            "Fix: start Ollama (`ollama serve`, then `ollama pull llama3.2`), or set "
            "OPENAI_BASE_URL / OPENAI_API_KEY, or pick another model with /model. "
            "`cozy doctor` checks the setup. You can still browse your sessions.",
            "error",
        )

    @work(exclusive=True, group="sessions", exit_on_error=False)
    async def refresh_sessions(self, query: str | None = None) -> None:
        await self.ready.wait()
        if query is None:
            query = self.query_one("#session-search").value  # type: ignore[attr-defined]
        rows = await self.runtime.store.list_sessions(
            self.settings.user, query=query or None, limit=200
        )
        await self.query_one(Sidebar).show(rows, self.session_id)

    async def on_unmount(self) -> None:
        release_full_gc(collect=False)  # the threshold goes back as the app closes
        if self._runtime is not None and self._given_runtime is None:
            await self._runtime.close()

    # --- widget messages ----------------------------------------------------
    def on_sidebar_search(self, message: Sidebar.Search) -> None:
        self.refresh_sessions(message.query)

    async def on_sidebar_open(self, message: Sidebar.Open) -> None:
        if self.busy:
            self.notify("an answer is running; esc cancels it", severity="warning")
            return
        await self.load_session(message.session_id)
        self.query_one(PromptArea).focus()

    async def on_sidebar_delete(self, message: Sidebar.Delete) -> None:
        await self.delete_session(message.session_id)

    async def on_prompt_area_submitted(self, message: PromptArea.Submitted) -> None:
        from cozy.tui.commands import parse

        text = message.text
        command = parse(text)
        if command is not None:
            self.query_one(PromptArea).clear()
            await self.run_command(command)
            return
        if text.lstrip().startswith("//"):
            text = text.lstrip()[1:]
        if self.busy:
            self.notify("an answer is running; esc cancels it", severity="warning")
            return
        self.query_one(PromptArea).clear()
        self.run_turn(text)

    def action_cancel(self) -> None:
        for worker in self.workers:
            if worker.group == "turn" and worker.is_running:
                worker.cancel()
                return
