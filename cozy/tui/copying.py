"""Copy code blocks from the chat: the system clipboard tool, then OSC 52, and a
toast that says which one took it."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from cozy.tui.clipboard import copy_with_tool
from cozy.tui.widgets.messages import code_blocks

if TYPE_CHECKING:
    from cozy.tui.host import Host


class CodeCopier:
    def __init__(self, host: Host) -> None:
        self.host = host

    async def copy_last(self) -> None:
        answer = self.host.views.chat.last_answer()
        blocks = code_blocks(answer.text) if answer else []
        if not blocks:
            self.host.notify("no code block in the last answer", severity="warning")
            return
        await self.copy(blocks[-1])

    async def copy(self, text: str) -> None:
        host = self.host
        tool = await asyncio.to_thread(copy_with_tool, text)
        host.copy_to_clipboard(text)  # OSC 52 through the terminal (see CozyApp)
        host.state.copied = text
        how = f"with {tool}" if tool else "through the terminal (OSC 52)"
        host.notify(f"copied {len(text.splitlines())} lines {how}")
