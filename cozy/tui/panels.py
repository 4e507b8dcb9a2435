"""Read-mostly panels opened from the chat: the memory / profile / knowledge
browsers, the tools list, and MCP prompts and resources sent as the next turn."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cozy.tui.host import busy_warning
from cozy.tui.screens.browser import BrowserScreen
from cozy.tui.screens.info import InfoScreen

if TYPE_CHECKING:
    from cozy.tui.host import Host


class Panels:
    def __init__(self, host: Host) -> None:
        self.host = host

    async def open_browser(self, kind: str) -> None:
        from cozy.core.errors import CozyError

        host = self.host
        reason = ""
        engine = None
        try:
            engine = await host.runtime.engine(kind)
        except CozyError as exc:
            reason = f"the {kind} engine could not start: {exc}"
        if engine is None and not reason:
            reason = (
                f"The {kind} engine is off. Not available yet in this install: set "
                f"`{kind}: {{provider: local}}` in engines.yaml once the provider is installed."
            )
        host.push_screen(BrowserScreen(kind, engine, host.settings.user, reason))

    async def show_tools(self) -> None:
        from cozy.core.types import Caller

        host = self.host
        rt = host.runtime
        personality = rt.personalities.get(host.state.personality)
        specs = await rt.orchestrator.tools.available(
            personality, Caller(user_id=host.settings.user, face="tui")
        )
        lines = [f"{s.name}  [{s.level}]\n    {s.description}" for s in specs]
        body = "\n".join(lines) or (
            f"no tools for {personality.id} (its tools: {personality.tools or 'none'})"
        )
        host.push_screen(InfoScreen(f"Tools for {personality.name}", body))

    async def mcp_command(self, name: str, arg: str) -> None:
        """/prompt and /resource: the server's prompt, or a resource, as the next turn."""
        from cozy.core import mcp_input
        from cozy.core.errors import CozyError, UsageError
        from cozy.engines.capabilities import ServesPrompts

        host = self.host
        engine = host.runtime.orchestrator.tools.engine
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
                host.push_screen(InfoScreen("MCP prompts", body))
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
            host.notify(str(exc), severity="error")
            return
        if busy_warning(host):
            return
        host.send(text)
