"""Copy code blocks from the chat: the system clipboard tool, then OSC 52, and a
toast that says which one took it."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from cozy.tui.clipboard import copy_with_tool

if TYPE_CHECKING:
    from cozy.tui.host import Host


class CodeCopier:
    def __init__(self, host: Host) -> None:
        self.host = host

    async def copy_block(self, arg: str = "") -> None:
        """`/copy N`: the chat's code block [N] (numbered in the answers' notes);
        without N, the last one."""
        host = self.host
        code = host.views.chat.code
        if not code:
            host.notify("no code block in this chat yet", severity="warning")
            return
        try:
            number = int(arg.strip().lstrip("[#").rstrip("]")) if arg.strip() else max(code)
        except ValueError:
            host.notify(f"/copy takes a block number (1-{max(code)}), not '{arg}'")
            return
        if number not in code:
            host.notify(
                f"no code block [{number}]: this chat has 1-{max(code)}", severity="warning"
            )
            return
        await self.copy(code[number], f"block [{number}]")

    async def copy(self, text: str, what: str = "") -> None:
        host = self.host
        tool = await asyncio.to_thread(copy_with_tool, text)
        host.copy_to_clipboard(text)  # OSC 52 through the terminal (see CozyApp)
        host.state.copied = text
        how = f"with {tool}" if tool else "through the terminal (OSC 52)"
        lines = len(text.splitlines())
        host.notify(f"copied {what + ', ' if what else ''}{lines} lines {how}")
