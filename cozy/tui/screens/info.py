"""Read-only modal text screens: help, tools list, notices."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from cozy.tui.commands import COMMANDS

if TYPE_CHECKING:
    from textual.app import App, ComposeResult


class InfoScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,enter", "close", "Close")]  # noqa: RUF012

    def __init__(self, title: str, body: str) -> None:
        super().__init__()
        self.title_text, self.body = title, body

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog info"):
            yield Static(self.title_text, classes="title", markup=False)
            with VerticalScroll():
                yield Static(self.body, markup=False, classes="info-body")
            yield Static("esc closes", classes="note")

    def action_close(self) -> None:
        self.dismiss(None)


def help_text(app: App[Any]) -> str:
    lines = ["Keys"]
    seen: set[str] = set()
    for binding in [*app.BINDINGS, *_widget_bindings()]:
        key, action, desc = _triple(binding)
        if not desc or action in seen:
            continue
        seen.add(action)
        lines.append(f"  {key.replace(',', ' / '):<18} {desc}")
    lines.append("")
    lines.append("Commands (type / then tab or → to complete)")
    lines.extend(f"  {name:<13} {desc}" for name, desc in COMMANDS.items())
    lines.append("")
    lines.append("Keys can be remapped in tui.yaml in the config dir (see `cozy config path`):")
    lines.append("  keys: {app.new_session: ctrl+n, prompt.send: enter}")
    return "\n".join(lines)


def _widget_bindings() -> list[object]:
    from cozy.tui.widgets.prompt import PromptArea
    from cozy.tui.widgets.sidebar import Sidebar

    return [*PromptArea.BINDINGS, *Sidebar.BINDINGS]


def _triple(binding: object) -> tuple[str, str, str]:
    if isinstance(binding, tuple):
        key, action, desc = [*binding, "", ""][:3]
        return str(key), str(action), str(desc)
    return (
        str(getattr(binding, "key", "")),
        str(getattr(binding, "action", "")),
        str(getattr(binding, "description", "")),
    )
