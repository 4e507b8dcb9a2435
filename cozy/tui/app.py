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
from textual.app import App
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Static

from cozy.tui.attachments import Attachments
from cozy.tui.background import BackgroundToasts
from cozy.tui.branching import Branching
from cozy.tui.choosers import Choosers
from cozy.tui.copying import CodeCopier
from cozy.tui.heap import IdleCollector
from cozy.tui.host import ChatState, TurnExtras, Views, busy_warning
from cozy.tui.ingest import KnowledgeIngest
from cozy.tui.panels import Panels
from cozy.tui.sessions import Sessions
from cozy.tui.slash import Handler, SlashCommands
from cozy.tui.startup import Startup
from cozy.tui.templates import TemplateCommand
from cozy.tui.turn import TurnRunner
from cozy.tui.voice import PushToTalk
from cozy.tui.widgets.context_panel import ContextPanel
from cozy.tui.widgets.messages import ChatLog
from cozy.tui.widgets.prompt import PromptArea
from cozy.tui.widgets.sidebar import Sidebar
from cozy.tui.widgets.status import StatusBar

if TYPE_CHECKING:
    from textual.app import ComposeResult

    from cozy.runtime import Runtime
    from cozy.settings import Settings

log = logging.getLogger("cozy.tui")

NARROW = 80  # columns below which the sidebar hides itself


class CozyApp(App[int]):
    """The screen and its keys; the work is done by the parts it composes (turns,
    sessions, choosers, panels, copy, voice, ingest), each given the app as a `Host`."""

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
        Binding("ctrl+r", "regenerate", "Regenerate last answer", id="app.regenerate"),
        # priority: the prompt (a TextArea) would take f6 / f7 as select line / all
        Binding("f6", "edit_last", "Edit your last message", id="app.edit", priority=True),
        Binding("f7", "branches", "Branches", id="app.branches", priority=True),
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
        self.state = ChatState(
            personality=personality or settings.personality, model=model or settings.model
        )
        self._views: Views | None = None
        self._sidebar_shown: bool | None = None  # None: it follows the terminal's width
        self.check_model = check_model
        self.idle_gc = IdleCollector()  # a turn's garbage is collected once you pause
        self.turns = TurnRunner(self)
        self.sessions = Sessions(self)
        self.choosers = Choosers(self)
        self.panels = Panels(self)
        self.copier = CodeCopier(self)
        self.branching = Branching(self)
        self.background = BackgroundToasts(self)
        self.templates = TemplateCommand(self)
        self.attachments = Attachments(self)
        self.voice = PushToTalk(self)
        self.ingest = KnowledgeIngest(self)
        self.startup = Startup(self, self.sessions, self.background, runtime)
        self.slash = SlashCommands(self, self._command_handlers())

    # --- the Host protocol ----------------------------------------------------
    @property
    def runtime(self) -> Runtime:
        assert self.startup.runtime is not None, "the runtime is not open yet"
        return self.startup.runtime

    @property
    def views(self) -> Views:
        if self._views is None:
            self._views = Views(
                chat=self.query_one(ChatLog),
                prompt=self.query_one(PromptArea),
                status=self.query_one(StatusBar),
                sidebar=self.query_one(Sidebar),
                context=self.query_one(ContextPanel),
                banner=self.query_one("#edit-banner", Static),
            )
        return self._views

    def send(self, text: str, extras: TurnExtras | None = None) -> None:
        self.turns.start(text, extras)

    def refresh_sessions(self, query: str | None = None) -> None:
        self.sessions.refresh(query)

    def attach_again(self, fragments: list[Any]) -> None:
        self.attachments.put_back(fragments)

    async def show_personalities(self) -> None:
        await self.choosers.show_personalities()

    async def load_session(self, session_id: str) -> None:
        if self.branching.editing is not None:
            self.branching.cancel_edit()
        await self.sessions.load(session_id)

    def copy_to_clipboard(self, text: str) -> None:
        """OSC 52, wrapped for tmux when inside it (Textual's own write is not)."""
        from cozy.tui.clipboard import osc52

        self._clipboard = text
        if self._driver is not None:
            self._driver.write(osc52(text))

    # --- shortcuts for readers and tests --------------------------------------
    @property
    def session_id(self) -> str | None:
        return self.state.session_id

    @property
    def personality(self) -> str:
        return self.state.personality

    @property
    def model(self) -> str | None:
        return self.state.model

    @property
    def busy(self) -> bool:
        return self.state.busy

    @property
    def ready(self) -> asyncio.Event:
        return self.state.ready

    # --- screen -----------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Sidebar()
        with Vertical(id="main"):
            yield ChatLog(id="chat")
            yield Static("", id="edit-banner", markup=False)
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
        views = self.views
        views.context.display = False
        views.status.set(personality=self.state.personality, model=self.state.model or "default")
        views.prompt.focus()
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
        self.idle_gc.poll(self.state.busy)

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key):
            self.idle_gc.touch()
        await super().on_event(event)

    @work(exclusive=True, group="start", exit_on_error=False)
    async def start(self) -> None:
        if await self.startup.open(self.start_session) and self.check_model:
            self.probe_model()

    @work(exclusive=True, group="probe", exit_on_error=False)
    async def probe_model(self) -> None:
        await self.startup.probe_model()

    async def on_unmount(self) -> None:
        await self.startup.close()

    # --- widget messages ----------------------------------------------------
    def on_sidebar_search(self, message: Sidebar.Search) -> None:
        self.refresh_sessions(message.query)

    async def on_sidebar_open(self, message: Sidebar.Open) -> None:
        await self.sessions.open(message.session_id)

    async def on_sidebar_delete(self, message: Sidebar.Delete) -> None:
        await self.sessions.delete(message.session_id)

    async def on_sidebar_personality(self, message: Sidebar.Personality) -> None:
        await self.choosers.choose_personality(message.personality_id)

    async def on_prompt_area_submitted(self, message: PromptArea.Submitted) -> None:
        from cozy.tui.commands import parse

        text = message.text
        prompt = self.views.prompt
        command = parse(text)
        if command is not None:
            prompt.clear()
            await self.slash.run(command)
            return
        if text.lstrip().startswith("//"):
            text = text.lstrip()[1:]
        if busy_warning(self):
            return
        if self.branching.editing is not None:
            await self.branching.resend(text)
            return
        got = await self.attachments.extras_for(text)  # /file's files, @paths in the text
        if got is None:  # a file could not be read: the toast says why, the text stays
            return
        prompt.clear()
        text, extras = got
        self.send(text, extras if extras.fragments or extras.images else None)

    # --- actions (key bindings) ---------------------------------------------
    def action_cancel(self) -> None:
        """Esc: stop the answer; else leave what you were doing and go back to the prompt."""
        if self.turns.cancel(self.workers) or self.branching.cancel_edit():
            return
        prompt = self.views.prompt
        if not prompt.has_focus:
            prompt.focus()

    def on_chat_log_typed(self, message: ChatLog.Typed) -> None:
        """Typing while the chat log has the focus goes to the prompt, not nowhere."""
        prompt = self.views.prompt
        prompt.focus()
        prompt.insert(message.character)

    def on_resize(self, event: events.Resize) -> None:
        """On a narrow terminal the sidebar steps aside unless you opened it (ctrl+b)."""
        if self._sidebar_shown is None and self._views is not None:
            self.views.sidebar.display = event.size.width >= NARROW

    async def action_new_session(self) -> None:
        await self.sessions.new()

    async def action_rename_session(self) -> None:
        await self.sessions.ask_rename()

    async def action_undo_delete(self) -> None:
        await self.sessions.restore()

    def action_toggle_sidebar(self) -> None:
        sidebar = self.views.sidebar
        sidebar.display = self._sidebar_shown = not sidebar.display
        if not sidebar.display and sidebar.has_focus_within:
            self.views.prompt.focus()

    def action_toggle_context(self) -> None:
        panel = self.views.context
        panel.display = not panel.display

    def action_pick_personality(self) -> None:
        self.choosers.pick_personality()

    def action_pick_model(self) -> None:
        self.choosers.pick_model()

    async def action_copy_code(self) -> None:
        await self.copier.copy_block()

    async def action_regenerate(self) -> None:
        await self.branching.regenerate()

    def action_edit_last(self) -> None:
        if self.screen is self.screen_stack[0]:  # not over a dialog
            self.branching.start_edit()

    async def action_branches(self) -> None:
        if self.screen is self.screen_stack[0]:
            await self.branching.pick_branch()

    async def action_push_to_talk(self) -> None:
        await self.voice.toggle()

    def action_help(self) -> None:
        from cozy.tui.screens.info import InfoScreen, help_text

        self.push_screen(InfoScreen("Help", help_text(self)))

    def _command_handlers(self) -> dict[str, Handler]:
        # with an argument a command does it; without, it opens its picker or browser
        ch = self.choosers
        return {
            "/new": lambda _: self.sessions.new(),
            "/personality": lambda a: ch.choose_personality(a) if a else ch.pick_personality(),
            "/model": lambda a: ch.set_model(a) if a else ch.pick_model(),
            "/memory": lambda _: self.panels.open_browser("memory"),
            "/profile": lambda _: self.panels.open_browser("profile"),
            "/knowledge": lambda a: (
                self.ingest.command(a) if a else self.panels.open_browser("knowledge")
            ),
            "/tools": lambda _: self.panels.show_tools(),
            "/prompt": lambda arg: self.panels.mcp_command("/prompt", arg),
            "/resource": lambda arg: self.panels.mcp_command("/resource", arg),
            "/context": lambda _: self.action_toggle_context(),
            "/export": lambda arg: self.sessions.export(arg),
            "/file": self.attachments.command,
            "/rename": lambda a: self.sessions.rename_to(a) if a else self.sessions.ask_rename(),
            "/template": self.templates.run,
            "/regen": lambda _: self.branching.regenerate(),
            "/edit": self.branching.start_edit,
            "/undo": lambda _: self.branching.undo(),
            "/branches": lambda _: self.branching.pick_branch(),
            "/restore": lambda _: self.sessions.restore(),
            "/copy": self.copier.copy_block,
            "/clear": lambda _: self.views.chat.reset(),
            "/help": lambda _: self.action_help(),
            "/quit": lambda _: self.exit(return_code=0),
        }
