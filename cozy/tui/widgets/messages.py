"""Chat log widgets: one view per message, tool call rows, streamed Markdown answers.

An answer streams through `BlockStream`: each finished Markdown block is parsed
once; only the block still arriving is redrawn (as plain text, at most 20 times a
second), and the tail is rendered as Markdown when the answer ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from typing import TYPE_CHECKING, Any, cast

from textual.containers import Vertical, VerticalScroll
from textual.widgets import Markdown, Static

if TYPE_CHECKING:
    from textual.app import ComposeResult
    from textual.css.styles import RulesMap

_FENCE = re.compile(r"```[^\n]*\n(.*?)```", re.S)
STATUS_LABELS = {"interrupted": "interrupted", "failed": "failed", "corrupt": "corrupt"}


def code_blocks(text: str) -> list[str]:
    """Fenced code blocks of a Markdown text, in order."""
    return [m.group(1).rstrip("\n") for m in _FENCE.finditer(text)]


def _short(value: str, limit: int = 300) -> str:
    value = value.strip()
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _clip(text: str, limit: int = 4000) -> str:
    """Huge pastes are sent whole but shown clipped, so the view stays responsive."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n… ({len(text) - limit:,} more characters)"


def safe_cut(text: str) -> int:
    """Length of the prefix made of complete Markdown blocks (ends at a blank line
    that is not inside a code fence); 0 when no block is complete yet."""
    cut = 0
    fences = 0
    pos = 0
    for line in text.splitlines(keepends=True):
        pos += len(line)
        if line.lstrip().startswith("```"):
            fences += 1
        elif not line.strip() and fences % 2 == 0 and line.endswith("\n"):
            cut = pos
    return cut


class BlockStream:
    """Streams an answer block by block.

    Finished blocks are parsed once into their own Markdown widget and never
    touched again; the block still arriving is plain text in a tail widget,
    updated at most every `interval` seconds (deltas in between are coalesced).
    The tail's height is reserved in steps of `step` rows, so most updates only
    repaint the tail (`layout=False`): the chat is laid out again only when a
    block is finished or the tail outgrows its reserved rows. So the cost per
    update stays small however long the answer gets, and typing stays responsive
    while it streams. `stop()` renders the rest as Markdown (the answer is
    finalised at the end).
    """

    def __init__(self, view: MessageView, interval: float = 0.1, step: int = 6) -> None:
        self.view = view
        self.interval = interval
        self.step = step
        self.buffer = ""
        self.layouts = 0  # updates that laid the chat out again (blocks mounted, rows reserved)
        self.updates = 0  # tail updates
        self.stopped = False
        self._reserved = 0
        self._width = 0
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    def write(self, fragment: str) -> None:
        if fragment:
            self.buffer += fragment
            self._wake.set()

    async def _flush(self, final: bool = False) -> None:
        cut = len(self.buffer) if final else safe_cut(self.buffer)
        tail = self.view.query_one(".tail", Static)
        if not cut and not final:
            self._show_tail(tail, relayout=False)
            return
        done, self.buffer = self.buffer[:cut], self.buffer[cut:]
        # one repaint for the finished block and the shorter tail (no frame shows both)
        with self.view.app.batch_update():
            if done.strip():
                await self.view.mount(Markdown(done, classes="body"), before=tail)
                self.layouts += 1
            if final:
                tail.styles.height = "auto"
                tail.update(self.buffer)
                tail.display = bool(self.buffer)
            else:
                self._show_tail(tail, relayout=True)

    def _show_tail(self, tail: Static, *, relayout: bool) -> None:
        """Show the arriving block; lay out again only when its reserved rows change."""
        from textual.content import Content

        self.updates += 1
        width = tail.content_region.width
        if width <= 0:  # not laid out yet: reserve one step, the layout gives a width
            self._reserve(tail, self.step)
            tail.update(self.buffer)
            tail.display = True
            return
        rules = cast("RulesMap", tail.styles)  # what Textual itself sizes a Static with
        rows = Content(self.buffer).get_height(rules, width) if self.buffer else 0
        need = max(self.step, -(-rows // self.step) * self.step)
        if need > self._reserved or width != self._width or (relayout and need != self._reserved):
            self._width = width
            self._reserve(tail, need)
            tail.update(self.buffer)
        else:  # same size: repaint the tail alone, no relayout of the chat
            tail.update(self.buffer, layout=False)
        tail.display = True

    def _reserve(self, tail: Static, rows: int) -> None:
        self._reserved = rows
        self.layouts += 1
        tail.styles.height = rows

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.shield(self._flush())
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        self.stopped = True
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._flush(final=True)


class MessageView(Vertical):
    """One message: a role line and a body (plain text for the user, Markdown otherwise)."""

    def __init__(
        self, role: str, text: str = "", *, status: str = "complete", note: str = ""
    ) -> None:
        super().__init__(classes=f"message {role}")
        self.role = role
        self.text = text
        self.status = status
        self.note = note
        self.stream: BlockStream | None = None  # kept after the end (its counters)

    def compose(self) -> ComposeResult:
        yield Static(self._header(), classes="role", markup=False)
        if self.role in ("user", "error", "tool"):
            yield Static(_clip(self.text), classes="body", markup=False)
        elif self.text:
            yield Markdown(self.text, classes="body")
        tail = Static("", classes="tail", markup=False)
        tail.display = False
        yield tail
        note = Static(self.note, classes="note", markup=False)
        note.display = bool(self.note)
        yield note

    def _header(self) -> str:
        who = {"user": "you", "assistant": "cozy", "error": "error"}.get(self.role, self.role)
        label = STATUS_LABELS.get(self.status)
        return f"{who} · {label}" if label else who

    def append(self, fragment: str) -> None:
        self.text += fragment
        if self.stream is None or self.stream.stopped:
            self.stream = BlockStream(self)
        self.stream.write(fragment)

    async def finish(self, status: str = "complete", note: str = "") -> None:
        """Stop streaming (flushing what is buffered) and show the final status."""
        if self.stream is not None and not self.stream.stopped:
            await self.stream.stop()
        self.status = status
        self.note = note
        self.set_class(status != "complete", "-" + status)
        self.query_one(".role", Static).update(self._header())
        note_view = self.query_one(".note", Static)
        note_view.update(note)
        note_view.display = bool(note)


class ToolCallView(Static):
    """A tool call inline: name and arguments, then result, duration and decision."""

    def __init__(self, call_id: str, name: str, arguments: str, level: str | None) -> None:
        self.call_id = call_id
        self.tool_name = name
        self.arguments = arguments
        self.level = level or "?"
        self.state = "running"
        self.result = ""
        super().__init__(self._render_text(), classes="tool", markup=False)

    def _render_text(self) -> str:
        try:
            args = json.dumps(json.loads(self.arguments or "{}"), ensure_ascii=False)
        except ValueError:
            args = self.arguments
        head = f"⚙ {self.tool_name}({_short(args, 200)}) [{self.level}]"
        if self.state == "running":
            return f"{head} …"
        if self.state == "approval":
            return f"{head} waiting for your approval"
        return f"{head}\n  → {_short(self.result)}"

    def waiting(self) -> None:
        self.state = "approval"
        self.update(self._render_text())

    def done(self, content: str, *, is_error: bool, duration_ms: float, decision: str) -> None:
        self.state = "error" if is_error else "ok"
        extra = f"{duration_ms:.0f} ms" + ("" if decision == "auto" else f", {decision}")
        self.result = f"{content}  ({extra})"
        self.set_class(is_error, "-error")
        self.update(self._render_text())


class ChatLog(VerticalScroll):
    """The scrolling chat view; stays anchored to the bottom while answers stream."""

    can_focus = True

    def on_mount(self) -> None:
        self.anchor()

    async def add(self, widget: Any) -> Any:
        await self.mount(widget)
        self.anchor()
        return widget

    async def add_message(
        self, role: str, text: str = "", *, status: str = "complete", note: str = ""
    ) -> MessageView:
        view: MessageView = await self.add(MessageView(role, text, status=status, note=note))
        return view

    async def add_notice(self, text: str, kind: str = "info") -> Static:
        notice: Static = await self.add(Static(text, classes=f"notice {kind}", markup=False))
        return notice

    def tool_view(self, call_id: str) -> ToolCallView | None:
        for view in reversed(list(self.query(ToolCallView))):  # ids may repeat across turns
            if view.call_id == call_id:
                return view
        return None

    def last_answer(self) -> MessageView | None:
        answers = [v for v in self.query(MessageView) if v.role == "assistant"]
        return answers[-1] if answers else None
