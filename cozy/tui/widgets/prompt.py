"""The prompt box: multi-line input, Enter sends, history, `/` command completion."""

from __future__ import annotations

from textual.binding import Binding
from textual.message import Message
from textual.widgets import TextArea

from cozy.tui.commands import complete


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

    def action_submit(self) -> None:
        text = self.text
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
