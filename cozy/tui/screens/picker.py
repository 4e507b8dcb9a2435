"""A searchable picker (personalities, models); Enter on free text returns the text."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, ListItem, ListView, Static

if TYPE_CHECKING:
    from textual.app import ComposeResult


class _Choice(ListItem):
    def __init__(self, value: str, label: str) -> None:
        super().__init__(Label(label, markup=False))
        self.value = value


class PickerScreen(ModalScreen[str | None]):
    """Dismisses with the chosen value, the typed text (if `free_text`), or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]  # noqa: RUF012

    def __init__(
        self,
        title: str,
        choices: list[tuple[str, str]],
        *,
        current: str | None = None,
        free_text: bool = False,
        note: str = "",
    ) -> None:
        super().__init__()
        self.title_text = title
        self.choices = choices
        self.current = current
        self.free_text = free_text
        self.note = note

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog picker"):
            yield Static(self.title_text, classes="title", markup=False)
            yield Input(placeholder="type to filter", id="picker-filter")
            yield ListView(id="picker-list")
            if self.note:
                yield Static(self.note, classes="note", markup=False)

    async def on_mount(self) -> None:
        await self._fill("")
        self.query_one(Input).focus()

    async def _fill(self, query: str) -> None:
        view = self.query_one(ListView)
        await view.clear()
        q = query.lower()
        items = [
            _Choice(v, f"{'● ' if v == self.current else '  '}{label}")
            for v, label in self.choices
            if q in v.lower() or q in label.lower()
        ]
        if items:
            await view.extend(items)
            view.index = 0

    async def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        await self._fill(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        item = self.query_one(ListView).highlighted_child
        if isinstance(item, _Choice):
            self.dismiss(item.value)
        elif self.free_text and event.value.strip():
            self.dismiss(event.value.strip())

    def on_key(self, event: object) -> None:
        key = getattr(event, "key", "")
        if key in ("down", "up") and self.query_one(Input).has_focus:
            view = self.query_one(ListView)
            if key == "down":
                view.action_cursor_down()
            else:
                view.action_cursor_up()

    def on_list_view_selected(self, event: ListView.Selected) -> None:
        event.stop()
        if isinstance(event.item, _Choice):
            self.dismiss(event.item.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class TextInputScreen(ModalScreen[str | None]):
    """Ask for one line of text (rename)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]  # noqa: RUF012

    def __init__(self, title: str, value: str = "") -> None:
        super().__init__()
        self.title_text, self.value = title, value

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.title_text, classes="title", markup=False)
            yield Input(value=self.value, id="text-input")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)
