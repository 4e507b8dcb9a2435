"""Chat log widgets: one view per message, tool call rows, streamed Markdown answers.

An answer streams through `BlockStream` into a `MarkdownBody` (one widget of cached
lines, see mdbody.py): each finished Markdown block is rendered once; only the block
still arriving is redrawn (as plain text, at most 10 times a second), and the rest is
rendered as Markdown when the answer ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from textual import events
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Static

from cozy.tui.widgets.mdbody import MarkdownBody, NoSecondLayout, safe_cut
from cozy.tui.widgets.toolcall import ToolCallView

__all__ = ["ChatLog", "MessageView", "Notice", "ToolCallView", "code_blocks"]

if TYPE_CHECKING:
    from textual.app import ComposeResult

_FENCE = re.compile(r"```[^\n]*\n(.*?)```", re.S)
STATUS_LABELS = {"interrupted": "interrupted", "failed": "failed", "corrupt": "corrupt"}


def code_blocks(text: str) -> list[str]:
    """Fenced code blocks of a Markdown text, in order."""
    return [m.group(1).rstrip("\n") for m in _FENCE.finditer(text)]


def _clip(text: str, limit: int = 4000) -> str:
    """Huge pastes are sent whole but shown clipped, so the view stays responsive."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n… ({len(text) - limit:,} more characters)"


class BlockStream:
    """Streams an answer into its MarkdownBody block by block.

    Deltas are coalesced and handed over at most every `interval` seconds: each
    finished block is rendered once and kept; the block still arriving is shown as
    plain text (see MarkdownBody). `stop()` hands over the rest (the answer is
    finalised at the end).
    """

    def __init__(self, body: MarkdownBody, interval: float = 0.1) -> None:
        self.body = body
        self.interval = interval
        self.buffer = ""
        self.stopped = False
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    @property
    def layouts(self) -> int:
        return self.body.layouts

    @property
    def updates(self) -> int:
        return self.body.updates

    def write(self, fragment: str) -> None:
        if fragment:
            self.buffer += fragment
            self._wake.set()

    def _flush(self) -> None:
        cut = safe_cut(self.buffer)
        done, self.buffer = self.buffer[:cut], self.buffer[cut:]
        self.body.feed(done, self.buffer)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            self._flush()
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        self.stopped = True
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self.body.feed(self.buffer, "")
        self.buffer = ""
        self.body.finish()


class MessageView(Vertical, NoSecondLayout):
    """One message: a role line and a body (plain text for the user, Markdown otherwise)."""

    def __init__(
        self,
        role: str,
        text: str = "",
        *,
        status: str = "complete",
        note: str = "",
        message_id: str | None = None,
    ) -> None:
        super().__init__(classes=f"message {role}")
        self.role = role
        self.text = text
        self.status = status
        self.note = note
        self.message_id = message_id  # the stored message, once known
        self.number: int | None = None  # your messages: "#n" for /edit n
        self.code_numbers: list[int] = []  # this answer's code blocks: /copy n
        self.stream: BlockStream | None = None  # kept after the end (its counters)
        # your message with files: `text` is all the model saw, `typed` what you wrote;
        # /edit and regenerate send `typed` again with the same `fragments`
        self.typed: str | None = None
        self.fragments: list[Any] = []

    @property
    def own_text(self) -> str:
        return self.text if self.typed is None else self.typed

    def compose(self) -> ComposeResult:
        yield Static(self._header(), classes="role", markup=False)
        if self.role in ("user", "error", "tool"):
            yield Static(_clip(self.text), classes="body", markup=False)
        else:
            yield MarkdownBody(self.text, classes="body")
        if self.role == "assistant" or self.note:  # only answers get a note later
            note = Static(self._note_text(), classes="note", markup=False)
            note.display = bool(self._note_text())
            yield note

    def _header(self) -> str:
        who = {"user": "you", "assistant": "cozy", "error": "error"}.get(self.role, self.role)
        if self.number is not None:
            who = f"{who} #{self.number}"
        label = STATUS_LABELS.get(self.status)
        return f"{who} · {label}" if label else who

    def _note_text(self) -> str:
        parts = [self.note] if self.note else []
        if self.code_numbers:
            first, last = self.code_numbers[0], self.code_numbers[-1]
            span = f"[{first}]" if first == last else f"[{first}]-[{last}]"
            parts.append(f"code {span}: /copy {first}")
        return " · ".join(parts)

    def set_number(self, number: int) -> None:
        self.number = number
        if self.is_mounted:
            self.query_one(".role", Static).update(self._header())

    def copy(self) -> MessageView:
        """A new view showing the same (to mount again after being unmounted)."""
        view = MessageView(
            self.role, self.text, status=self.status, note=self.note, message_id=self.message_id
        )
        view.number, view.code_numbers = self.number, list(self.code_numbers)
        view.typed, view.fragments = self.typed, list(self.fragments)
        return view

    def append(self, fragment: str) -> None:
        self.text += fragment
        if self.stream is None or self.stream.stopped:
            self.stream = BlockStream(self.query_one(MarkdownBody))
        self.stream.write(fragment)

    async def finish(self, status: str = "complete", note: str = "") -> None:
        """Stop streaming (flushing what is buffered) and show the final status."""
        if self.stream is not None and not self.stream.stopped:
            await self.stream.stop()
        self.status = status
        self.note = note
        chat = self.parent
        if isinstance(chat, ChatLog) and not self.code_numbers:
            chat.number_code(self)
        self.set_class(status != "complete", "-" + status)
        self.query_one(".role", Static).update(self._header())
        text = self._note_text()
        for note_view in self.query_children(".note").results(Static):
            note_view.update(text)
            note_view.display = bool(text)


class Notice(Static):
    """A line from the app itself (errors, hints) in the chat."""

    def __init__(self, text: str, kind: str = "info") -> None:
        super().__init__(text, classes=f"notice {kind}", markup=False)
        self.text, self.kind = text, kind


class EarlierItems(Static):
    """Stands in for the items the chat no longer keeps mounted; a click (or scrolling
    to the top) brings the previous ones back."""

    def on_click(self) -> None:
        chat = self.parent
        if isinstance(chat, ChatLog):
            chat.run_worker(chat.show_earlier(), group="earlier", exclusive=True)


def _as_is(widget: Any) -> Callable[[], Any]:
    """For a widget never mounted yet: it can be mounted later as it is."""
    return lambda: widget


def _rebuilder(widget: Any) -> Callable[[], Any]:
    """How to build a chat item again once it is unmounted (a removed Textual widget
    cannot be mounted again)."""
    if isinstance(widget, MessageView):
        return widget.copy
    if isinstance(widget, ToolCallView):
        return widget.copy
    if isinstance(widget, Notice):
        text, kind = widget.text, widget.kind
        return lambda: Notice(text, kind)
    shown = str(widget.render())
    return lambda: Static(shown, markup=False)


class ChatLog(VerticalScroll, NoSecondLayout):
    """The scrolling chat view; stays anchored to the bottom while answers stream.

    Only the last `keep` items stay mounted: every layout walks the mounted widgets,
    so a long session would make each streamed update dearer. Older items are
    unmounted in batches of `step` (kept as a way to rebuild them) behind an
    `EarlierItems` line, and come back when scrolled to (or clicked).
    """

    can_focus = True

    class Typed(Message):
        """A printable key pressed while the log has the focus (the app moves it on)."""

        def __init__(self, character: str) -> None:
            super().__init__()
            self.character = character

    def on_key(self, event: events.Key) -> None:
        if event.is_printable and event.character:
            event.stop()
            self.post_message(self.Typed(event.character))

    def __init__(self, *, keep: int = 20, step: int = 20, id: str | None = None) -> None:
        super().__init__(id=id)
        self.keep, self.step = keep, step
        self._stash: list[Callable[[], Any]] = []  # unmounted items, oldest first
        # numbered as shown, and kept when a view is unmounted: /edit n and /copy n
        self.yours: dict[int, MessageView] = {}
        self.code: dict[int, str] = {}

    def number_user(self, view: MessageView) -> None:
        if view.role == "user" and view.number is None:
            view.set_number(len(self.yours) + 1)
            self.yours[view.number or 0] = view

    def number_code(self, view: MessageView) -> None:
        if view.role != "assistant" or view.code_numbers:
            return
        for block in code_blocks(view.text):
            n = len(self.code) + 1
            self.code[n] = block
            view.code_numbers.append(n)

    @property
    def hidden_items(self) -> int:
        return len(self._stash)

    def on_mount(self) -> None:
        self.anchor()

    def items(self) -> list[Any]:
        return [c for c in self.children if not isinstance(c, EarlierItems)]

    async def add(self, widget: Any) -> Any:
        if isinstance(widget, MessageView):
            self.number_user(widget)
            if widget.text:
                self.number_code(widget)
        await self.mount(widget)
        self.anchor()
        if len(self.children) > self.keep + self.step:
            await self._trim()
        return widget

    async def load(self, widgets: list[Any]) -> None:
        """Show a session's items: the last `keep` mounted, the rest behind the line."""
        for widget in widgets:
            if isinstance(widget, MessageView):
                self.number_user(widget)
                self.number_code(widget)
        keep = widgets[-self.keep :] if self.keep else widgets
        self._stash.extend(_as_is(w) for w in widgets[: len(widgets) - len(keep)])
        await self._sync_marker()
        if keep:
            await self.mount_all(keep)

    async def reset(self) -> None:
        """Empty the chat (mounted and unmounted items)."""
        self._stash.clear()
        self.yours.clear()
        self.code.clear()
        await self.remove_children()

    async def _trim(self) -> None:
        items = self.items()
        old = items[: max(0, len(items) - self.keep)]
        if not old:
            return
        self._stash.extend(_rebuilder(w) for w in old)
        await self.remove_children(old)
        await self._sync_marker()

    async def show_earlier(self) -> None:
        """Mount the previous `step` items again, keeping the view where it was."""
        if not self._stash:
            return
        take, self._stash = self._stash[-self.step :], self._stash[: -self.step]
        items = self.items()
        widgets = [make() for make in take]
        if items:
            await self.mount_all(widgets, before=items[0])
            self.call_after_refresh(self.scroll_to_widget, items[0], top=True, animate=False)
        else:
            await self.mount_all(widgets)
        await self._sync_marker()

    async def _sync_marker(self) -> None:
        markers = list(self.query_children(EarlierItems))
        if not self._stash:
            if markers:
                await markers[0].remove()
            return
        text = f"▲ {len(self._stash)} earlier items: scroll up or click to show more"
        if markers:
            markers[0].update(text)
        else:
            await self.mount(EarlierItems(text, classes="earlier", markup=False), before=0)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if new_value <= 0 < old_value and self._stash:  # scrolled to the top
            self.run_worker(self.show_earlier(), group="earlier", exclusive=True)

    async def add_message(
        self,
        role: str,
        text: str = "",
        *,
        status: str = "complete",
        note: str = "",
        message_id: str | None = None,
    ) -> MessageView:
        view = MessageView(role, text, status=status, note=note, message_id=message_id)
        await self.add(view)
        return view

    async def add_notice(self, text: str, kind: str = "info") -> Static:
        notice: Static = await self.add(Notice(text, kind))
        return notice

    def tool_view(self, call_id: str) -> ToolCallView | None:
        for view in reversed(list(self.query(ToolCallView))):  # ids may repeat across turns
            if view.call_id == call_id:
                return view
        return None

    def last_answer(self) -> MessageView | None:
        answers = [v for v in self.query_children(MessageView) if v.role == "assistant"]
        return answers[-1] if answers else None
