"""The prompt box: multi-line input, Enter sends, history, `/` command completion.

Enter and bursts of keys. A terminal delivers a paste without bracketed-paste mode
(or `tmux send-keys "text" Enter`) as one burst of key presses. Two things follow:

- the Enter binding is a priority binding, so the app runs it as soon as the key is
  read, while the burst's characters are still queued for this widget: reading
  `self.text` then would see an empty box (the Enter was "ignored"). So Enter is
  decided on this widget's own queue (`call_later`), after the characters before it;
- an Enter followed within `BURST_S` by more typed text is part of a paste: it
  becomes a newline instead of sending the first line. Only an Enter that ends a
  burst sends. Bracketed pastes arrive as one `Paste` event and never send.
"""

from __future__ import annotations

from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.timer import Timer
from textual.widgets import TextArea

from cozy.tui.commands import complete

BURST_S = 0.05  # keys closer than this after an Enter belong to the same burst


class PromptArea(TextArea):
    BINDINGS = [  # noqa: RUF012 - Textual's convention
        Binding("enter", "submit", "Send", priority=True, id="prompt.send"),
        Binding("ctrl+j,alt+enter", "newline", "New line", id="prompt.newline"),
        Binding("ctrl+up", "history(-1)", "Previous prompt", id="prompt.history_prev"),
        Binding("ctrl+down", "history(1)", "Next prompt", id="prompt.history_next"),
        Binding("tab", "complete", "Complete command", show=False),
    ]

    class Submitted(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def __init__(self) -> None:
        super().__init__(id="prompt", soft_wrap=True, show_line_numbers=False, tab_behavior="focus")
        self.prompt_history: list[str] = []
        self._history_pos = 0
        self.placeholder = "Message cozy (enter sends · ctrl+j new line · / commands)"
        self._enter_timer: Timer | None = None
        self._enters_queued = 0

    @property
    def enter_pending(self) -> bool:
        """An Enter is waiting to see whether more of a burst follows."""
        return self._enters_queued > 0 or self._enter_timer is not None

    def action_submit(self) -> None:
        self._enters_queued += 1
        self.call_later(self._enter_arrived)  # after the keys queued before the Enter

    def _enter_arrived(self) -> None:
        self._enters_queued -= 1
        if self._enter_timer is not None:  # two Enters in one burst: the first was a newline
            self._enter_timer.stop()
            self.insert("\n")
        self._enter_timer = self.set_timer(BURST_S, self._burst_over)

    def _burst_over(self) -> None:
        self._enter_timer = None
        self.submit_now()

    async def _on_key(self, event: events.Key) -> None:
        if self._enter_timer is not None and event.is_printable:
            self._enter_timer.stop()  # text right after the Enter: a pasted newline
            self._enter_timer = None
            self.insert("\n")
        await super()._on_key(event)

    def submit_now(self) -> None:
        """Send what the box holds (Enter does this once its burst is over); the blank
        lines a paste ends with are not part of the message."""
        text = self.text.rstrip("\r\n")
        if not text.strip():
            return
        if not self.prompt_history or self.prompt_history[-1] != text:
            self.prompt_history.append(text)
        self._history_pos = len(self.prompt_history)
        self.post_message(self.Submitted(text))

    def action_newline(self) -> None:
        self.insert("\n")

    def action_history(self, step: int) -> None:
        if not self.prompt_history:
            return
        items = self.prompt_history
        self._history_pos = max(0, min(len(items), self._history_pos + step))
        text = items[self._history_pos] if self._history_pos < len(items) else ""
        self.load_text(text)
        self.move_cursor(self.document.end)

    def update_suggestion(self) -> None:
        text = self.text
        if text.startswith("/") and "\n" not in text and " " not in text:
            matches = complete(text)
            self.suggestion = matches[0][len(text) :] if matches else ""
        else:
            self.suggestion = ""

    def action_complete(self) -> None:
        if self.suggestion:
            self.insert(self.suggestion)
            self.suggestion = ""
        else:
            self.app.action_focus_next()
