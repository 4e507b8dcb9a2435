"""The tool approval modal: approve once / always for this personality / deny.

Enter takes the focused button, and the focus starts on Once: the safe choice that
lets the turn go on (Always widens what the personality may do from now on, so it
is never what a stray Enter picks). Esc or n denies; tab moves between the buttons.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

if TYPE_CHECKING:
    from textual.app import ComposeResult


class ApprovalScreen(ModalScreen[str]):
    """Dismisses with "once", "always" or "deny"."""

    BINDINGS = [  # noqa: RUF012 - Textual's convention
        Binding("y,o", "decide('once')", "Once"),
        Binding("a", "decide('always')", "Always"),
        Binding("n,d,escape", "decide('deny')", "Deny"),
    ]

    def __init__(self, tool: str, level: str, arguments: str, personality: str) -> None:
        super().__init__()
        self.tool, self.level, self.personality = tool, level, personality
        try:
            self.arguments = json.dumps(json.loads(arguments or "{}"), indent=2, ensure_ascii=False)
        except ValueError:
            self.arguments = arguments

    def compose(self) -> ComposeResult:
        with Vertical(id="approval", classes="dialog"):
            yield Static(f"Allow {self.tool}?  ({self.level})", classes="title", markup=False)
            yield Static(self.arguments[:4000], classes="arguments", markup=False)
            yield Static("enter: once · a: always · n / esc: deny", classes="note")
            with Horizontal(classes="buttons"):
                yield Button("Once [y]", id="once", variant="primary")
                yield Button(f"Always for {self.personality} [a]", id="always")
                yield Button("Deny [n]", id="deny", variant="error")

    def on_mount(self) -> None:
        self.query_one("#once", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id or "deny")

    def action_decide(self, decision: str) -> None:
        self.dismiss(decision)
