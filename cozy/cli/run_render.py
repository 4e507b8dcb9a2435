"""How `cozy run` shows the answer's text: plain, or Markdown on a terminal.

On a terminal (and unless `--no-md`, `TERM=dumb` or `COZY_NO_MD`) a spinner says the
model is thinking until the first token, then the answer is rendered as Markdown while
it streams. Finished blocks (everything before the last blank line outside a code
fence) are printed for good; only the block being written is redrawn, so a long answer
scrolls like plain text instead of being repainted whole. Piped output stays plain
text, byte for byte what the model said. NO_COLOR is honoured by rich (no colours;
layout kept).
"""

from __future__ import annotations

import os
import sys
from typing import Any, Protocol


class TextSink(Protocol):
    def start(self) -> None: ...
    def write(self, text: str) -> None: ...
    def pause(self) -> None: ...
    def end(self, *, ok: bool) -> None: ...


class PlainSink:
    """The answer as the model wrote it, flushed as it comes."""

    def __init__(self) -> None:
        self.started = False

    def start(self) -> None:
        pass

    def write(self, text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()
        self.started = True

    def pause(self) -> None:
        pass

    def end(self, *, ok: bool) -> None:
        if self.started or ok:
            sys.stdout.write("\n")
            sys.stdout.flush()


def wants_markdown(no_md: bool) -> bool:
    if no_md or os.environ.get("COZY_NO_MD") or os.environ.get("TERM") == "dumb":
        return False
    return sys.stdout.isatty()


def split_done(text: str) -> int:
    """Where the finished blocks of `text` end: after its last blank line that is not
    inside a code fence (0: nothing finished yet)."""
    cut, pos, fence = 0, 0, ""
    for line in text.splitlines(keepends=True):
        pos += len(line)
        if not line.endswith("\n"):
            break  # the line being written
        stripped = line.strip()
        if stripped.startswith(("```", "~~~")):
            mark = stripped[:3]
            if not fence:
                fence = mark
            elif mark == fence:
                fence = ""
        elif not stripped and not fence:
            cut = pos
    return cut


class MarkdownSink:
    """A spinner before the first token, then Markdown rendered as it streams."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(highlight=False)
        self.live: Any = None
        self.pending = ""  # text of the block being written

    def start(self) -> None:
        from rich.live import Live
        from rich.spinner import Spinner

        self.live = Live(
            Spinner("dots", text="thinking…", style="dim"),
            console=self.console,
            refresh_per_second=10,
            transient=True,  # the spinner and the block being drawn leave no trace
            redirect_stdout=False,
            redirect_stderr=True,  # tool notes print above the live block
        )
        self.live.start()

    def write(self, text: str) -> None:
        from rich.markdown import Markdown

        self.pending += text
        cut = split_done(self.pending)
        done = ""
        if cut:
            done, self.pending = self.pending[:cut], self.pending[cut:]
        if self.live is None:  # paused (a question on the terminal): resume drawing
            self.start()
        # the live block first, so printing the finished ones above it never redraws
        # the spinner
        self.live.update(Markdown(self.pending))
        if done:
            self.live.console.print(Markdown(done))

    def pause(self) -> None:
        """Stop drawing (the terminal is needed, e.g. for an approval prompt)."""
        if self.live is not None:
            self.live.stop()
            self.live = None

    def end(self, *, ok: bool) -> None:
        from rich.markdown import Markdown

        self.pause()
        if self.pending.strip():
            self.console.print(Markdown(self.pending))
        self.pending = ""


def sink(no_md: bool) -> TextSink:
    return MarkdownSink() if wants_markdown(no_md) else PlainSink()
