"""Files in a chat message: `/file PATH... [-- question]` and `@path` in the text.

The same inputs as `cozy run -a` / `@file` (cozy.core.inputs): text, code, PDF and
HTML files, a directory's text files, an http(s) page, and images for models that can
see them. `/file a.py notes.md` attaches them to your next message (the banner above
the prompt says so; `/file` alone drops them); `/file a.py -- what does it do?` sends
at once, as aichat's `.file` does; `@a.py` in a message attaches an existing file, as
Claude Code and `cozy run` do. Each text is stored once by hash with the message
pointing at it, like `cozy run -f`.
"""

from __future__ import annotations

import asyncio
import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cozy.tui.host import TurnExtras, busy_warning

if TYPE_CHECKING:
    from cozy.tui.host import Host


@dataclass(slots=True)
class Pending:
    fragments: list[Any] = field(default_factory=list)  # cozy.core.inputs.Fragment
    images: list[Any] = field(default_factory=list)  # cozy.core.types.ImagePart

    def __bool__(self) -> bool:
        return bool(self.fragments or self.images)

    def names(self) -> str:
        parts = [f"{f.source} ({len(f.text):,} chars)" for f in self.fragments]
        parts += [f"{i.source} (image)" for i in self.images]
        return ", ".join(parts)


class Attachments:
    def __init__(self, host: Host) -> None:
        self.host = host
        self.pending = Pending()

    async def command(self, arg: str) -> None:
        """`/file PATH... [-- text]`; `/file` alone drops what is attached."""
        host = self.host
        if not arg.strip():
            if self.pending:
                self.pending = Pending()
                self.show()
                host.notify("attachments dropped")
            else:
                host.notify(
                    "/file PATH... attaches files to your next message; "
                    "/file PATH... -- question sends at once",
                    severity="warning",
                )
            return
        padded = f" {arg} "  # `--` first, last or between: the paths end there
        cut = padded.find(" -- ")
        head, text = (padded[:cut], padded[cut + 4 :]) if cut >= 0 else (arg, "")
        try:
            paths = shlex.split(head)  # quoted paths may hold spaces
        except ValueError as exc:
            host.notify(f"/file: {exc}", severity="error")
            return
        got = await self._load(paths)
        if got is None:
            return
        self.pending.fragments += got.fragments
        self.pending.images += got.images
        if text.strip():
            if busy_warning(host):
                return
            host.views.prompt.clear()
            self.send(text.strip())
            return
        self.show()
        host.notify(f"attached to your next message: {got.names()}")

    def show(self) -> None:
        """The banner above the prompt lists what goes with the next message."""
        banner = self.host.views.banner
        if self.pending:
            banner.update(
                f"📎 {self.pending.names()} · sent with your next message (/file alone drops)"
            )
        banner.set_class(bool(self.pending), "-shown")

    async def extras_for(self, text: str) -> tuple[str, TurnExtras] | None:
        """The message's text and what it carries: the attached files, then the
        `@path`s it names; None (with a toast) when a file cannot be read."""
        from cozy.core.inputs import at_files

        paths: list[str] = []
        if "@" in text:
            text, paths = at_files(text)
        got = await self._load(paths) if paths else Pending()
        if got is None:
            return None
        taken, self.pending = self.pending, Pending()
        self.show()
        return text, TurnExtras(
            fragments=tuple(taken.fragments + got.fragments),
            images=tuple(taken.images + got.images),
        )

    def send(self, text: str) -> None:
        taken, self.pending = self.pending, Pending()
        self.show()
        self.host.send(
            text, TurnExtras(fragments=tuple(taken.fragments), images=tuple(taken.images))
        )

    def put_back(self, fragments: list[Any]) -> None:
        """A taken-back message's fragments go with the next message again (/undo)."""
        if fragments:
            self.pending.fragments = list(fragments) + self.pending.fragments
            self.show()

    async def _load(self, paths: list[str]) -> Pending | None:
        from cozy.core import inputs
        from cozy.core.errors import CozyError

        try:  # files and pages are read off the event loop: the screen stays live
            got = await asyncio.to_thread(inputs.gather, [], paths, None)
        except CozyError as exc:
            hint = f" ({exc.hint})" if getattr(exc, "hint", None) else ""
            self.host.notify(f"{exc}{hint}", severity="error", timeout=10)
            return None
        return Pending(list(got.fragments), list(got.images))
