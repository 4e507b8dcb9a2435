"""App actions: slash commands, pickers, session management, voice, copy, export."""

from __future__ import annotations

import asyncio
from pathlib import Path

from cozy.tui.base import AppBase
from cozy.tui.commands import COMMANDS, Command, complete
from cozy.tui.screens.browser import BrowserScreen
from cozy.tui.screens.info import InfoScreen, help_text
from cozy.tui.screens.picker import PickerScreen, TextInputScreen
from cozy.tui.widgets.context_panel import ContextPanel
from cozy.tui.widgets.messages import ChatLog, code_blocks
from cozy.tui.widgets.sidebar import Sidebar
from cozy.tui.widgets.status import StatusBar


class ActionsMixin(AppBase):
    async def run_command(self, command: Command) -> None:  # noqa: C901 - flat dispatch
        name, arg = command.name, command.arg
        if name not in COMMANDS:
            matches = complete(name)
            hint = f"did you mean {', '.join(matches)}?" if matches else "type /help for the list"
            self.notify(
                f"unknown command {name}: {hint} (start with // to send a line beginning with /)",
                severity="warning",
            )
            return
        if name == "/new":
            await self.action_new_session()
        elif name == "/personality":
            if arg:
                await self.choose_personality(arg)
            else:
                self.action_pick_personality()
        elif name == "/model":
            if arg:
                self.set_model(arg)
            else:
                self.action_pick_model()
        elif name == "/knowledge" and arg:
            await self.knowledge_command(arg)  # type: ignore[attr-defined]
        elif name in ("/memory", "/profile", "/knowledge"):
            await self.open_browser(name[1:])
        elif name == "/tools":
            await self.show_tools()
        elif name in ("/prompt", "/resource"):
            await self.mcp_command(name, arg)
        elif name == "/context":
            self.action_toggle_context()
        elif name == "/export":
            await self.export_session(arg)
        elif name == "/rename":
            if arg:
                await self.rename_to(arg)
            else:
                await self.action_rename_session()
        elif name == "/undo":
            await self.action_undo_delete()
        elif name == "/copy":
            self.action_copy_code()
        elif name == "/clear":
            await self.query_one(ChatLog).reset()
        elif name == "/help":
            self.action_help()
        elif name == "/quit":
            self.exit(return_code=0)

    # --- sessions -----------------------------------------------------------
    async def action_new_session(self) -> None:
        if self.busy:
            self.notify("an answer is running; esc cancels it", severity="warning")
            return
        self.session_id = None
        await self.query_one(ChatLog).reset()
        self.query_one(ContextPanel).show(None)
        self.query_one(StatusBar).set(degraded=False)
        self.refresh_sessions()
        self.notify("new session: it is saved with your first message")

    async def action_rename_session(self) -> None:
        if self.session_id is None:
            self.notify("nothing to rename yet: send a message first", severity="warning")
            return
        row = await self.runtime.store.get_session(self.session_id, user_id=self.settings.user)

        async def done(title: str | None) -> None:
            if title:
                await self.rename_to(title)

        self.push_screen(TextInputScreen("Rename session", row.title or ""), callback=done)

    async def rename_to(self, title: str) -> None:
        if self.session_id is None:
            self.notify("nothing to rename yet: send a message first", severity="warning")
            return
        await self.runtime.store.update_session(self.session_id, self.settings.user, title=title)
        self.refresh_sessions()
        self.notify(f"renamed to '{title}'")

    async def delete_session(self, session_id: str) -> None:
        await self.runtime.store.delete_session(session_id, self.settings.user)
        self.deleted.append(session_id)
        if session_id == self.session_id:
            self.session_id = None
            await self.query_one(ChatLog).reset()
        self.refresh_sessions()
        self.notify("session deleted · ctrl+z (in the sidebar) or /undo restores it", timeout=8)

    async def action_undo_delete(self) -> None:
        if not self.deleted:
            self.notify("nothing to undo")
            return
        session_id = self.deleted.pop()
        await self.runtime.store.restore_session(session_id, self.settings.user)
        self.refresh_sessions()
        self.notify("session restored")

    def action_toggle_sidebar(self) -> None:
        sidebar = self.query_one(Sidebar)
        sidebar.display = not sidebar.display

    def action_toggle_context(self) -> None:
        panel = self.query_one(ContextPanel)
        panel.display = not panel.display

    # --- personality and model ----------------------------------------------
    def action_pick_personality(self) -> None:
        items = self.runtime.personalities.all()
        choices = [(p.id, f"{p.name} — {p.description}") for p in items.values()]

        async def done(value: str | None) -> None:
            if value:
                await self.choose_personality(value)

        self.push_screen(
            PickerScreen("Personality", choices, current=self.personality), callback=done
        )

    async def choose_personality(self, pid: str) -> None:
        from cozy.core.errors import CozyError

        try:
            personality = self.runtime.personalities.get(pid)
        except CozyError as exc:
            self.notify(str(exc), severity="error")
            return
        self.personality = personality.id
        if self.session_id is not None:
            await self.runtime.store.update_session(
                self.session_id, self.settings.user, personality_id=personality.id
            )
        self.query_one(StatusBar).set(personality=personality.id)
        self.notify(f"personality: {personality.name}")

    def action_pick_model(self) -> None:
        self.pick_model_worker()

    def set_model(self, spec: str) -> None:
        self.model = spec
        self.query_one(StatusBar).set(model=spec)
        self.notify(f"model: {spec}")

    async def _model_choices(self) -> tuple[list[tuple[str, str]], str]:
        rt = self.runtime
        try:
            provider = rt.router.split(self.model)[0]
            models = await rt.list_models(provider)
        except Exception as exc:  # a down provider still lets the user type a model
            return [], f"could not list models: {exc}; type provider:model and press enter"
        return [(f"{m.provider}:{m.id}", f"{m.provider}:{m.id}") for m in models], (
            "or type provider:model and press enter"
        )

    def pick_model_worker(self) -> None:
        async def run() -> None:
            choices, note = await self._model_choices()
            current = self.model

            def done(value: str | None) -> None:
                if value:
                    self.set_model(value)

            self.push_screen(
                PickerScreen("Model", choices, current=current, free_text=True, note=note),
                callback=done,
            )

        self.run_worker(run(), group="picker", exclusive=True)

    # --- browsers, tools, export, copy, voice, help ---------------------------
    async def open_browser(self, kind: str) -> None:
        from cozy.core.errors import CozyError

        reason = ""
        engine = None
        try:
            engine = await self.runtime.engine(kind)
        except CozyError as exc:
            reason = f"the {kind} engine could not start: {exc}"
        if engine is None and not reason:
            reason = (
                f"The {kind} engine is off. Not available yet in this install: set "
                f"`{kind}: {{provider: local}}` in engines.yaml once the provider is installed."
            )
        self.push_screen(BrowserScreen(kind, engine, self.settings.user, reason))

    async def show_tools(self) -> None:
        from cozy.core.types import Caller

        rt = self.runtime
        personality = rt.personalities.get(self.personality)
        specs = await rt.orchestrator.tools.available(
            personality, Caller(user_id=self.settings.user, face="tui")
        )
        lines = [f"{s.name}  [{s.level}]\n    {s.description}" for s in specs]
        body = "\n".join(lines) or (
            f"no tools for {personality.id} (its tools: {personality.tools or 'none'})"
        )
        self.push_screen(InfoScreen(f"Tools for {personality.name}", body))

    async def mcp_command(self, name: str, arg: str) -> None:
        """/prompt and /resource: the server's prompt, or a resource, as the next turn."""
        from cozy.core import mcp_input
        from cozy.core.errors import CozyError, UsageError
        from cozy.engines.base import ServesPrompts

        engine = self.runtime.orchestrator.tools.engine
        words = arg.split()
        try:
            if name == "/prompt" and not words:
                prompts, problems = await mcp_input.engine_for(engine, ServesPrompts).list_prompts()
                lines = [
                    f"{p.qualified}  {' '.join(a['name'] + '=' for a in p.arguments)}\n"
                    f"    {p.description}"
                    for p in prompts
                ]
                body = "\n".join(lines + problems) or "no MCP prompts"
                self.push_screen(InfoScreen("MCP prompts", body))
                return
            if name == "/prompt":
                pairs, rest = mcp_input.split_words(words[1:])
                text = await mcp_input.render_prompt(engine, words[0], pairs)
                if rest:
                    text = f"{text}\n\n{' '.join(rest)}"
            else:
                if not words:
                    raise UsageError("/resource needs SERVER:URI")
                res = await mcp_input.read_ref(engine, words[0])
                text = mcp_input.attach_resources(" ".join(words[1:]), [res])
        except CozyError as exc:
            self.notify(str(exc), severity="error")
            return
        if self.busy:
            self.notify("an answer is running; esc cancels it", severity="warning")
            return
        self.run_turn(text)

    async def export_session(self, target: str) -> None:
        if self.session_id is None:
            self.notify("nothing to export yet", severity="warning")
            return
        store = self.runtime.store
        row = await store.get_session(self.session_id, user_id=self.settings.user)
        msgs = await store.list_messages(row.id)
        lines = [f"# {row.title or row.id}", "", f"- session: `{row.id}`", ""]
        for m in msgs:
            label = {"user": "You", "assistant": "Assistant"}.get(m.role, m.role.title())
            flag = f" ({m.status})" if m.status != "complete" else ""
            lines += [f"## {label}{flag}", "", m.content, ""]
        path = Path(target or f"cozy-{row.id}.md")
        try:
            path = await asyncio.to_thread(_write, path, "\n".join(lines))
        except OSError as exc:
            self.notify(f"could not write {path}: {exc}", severity="error")
            return
        self.notify(f"exported to {path}")

    def action_copy_code(self) -> None:
        answer = self.query_one(ChatLog).last_answer()
        blocks = code_blocks(answer.text) if answer else []
        if not blocks:
            self.notify("no code block in the last answer", severity="warning")
            return
        self.copy_to_clipboard(blocks[-1])
        self.copied = blocks[-1]
        self.notify(f"copied {len(blocks[-1].splitlines())} lines")

    async def action_push_to_talk(self) -> None:
        """Toggle recording; the second press transcribes and sends the prompt."""
        from cozy.tui.voice import Recorder, voice_engine

        if self.recorder is not None:
            recorder, self.recorder = self.recorder, None
            self.query_one(StatusBar).set(recording=False)
            try:
                text = await recorder.stop()
            except Exception as exc:  # device vanished, recogniser failed
                self.notify(f"voice: {exc}", severity="error", timeout=10)
                return
            if not text:
                self.notify("voice: heard nothing", severity="warning")
                return
            self.run_turn(text)
            return
        engine, problem = await voice_engine(self.runtime)
        if problem is not None:
            self.voice_problem = problem
            self.notify(problem, severity="warning", timeout=12)
            return
        self.recorder = Recorder(engine)
        self.recorder.start()
        self.query_one(StatusBar).set(recording=True)

    def action_help(self) -> None:
        self.push_screen(InfoScreen("Help", help_text(self)))


def _write(path: Path, text: str) -> Path:
    path = path.expanduser().resolve()
    path.write_text(text, encoding="utf-8")
    return path
