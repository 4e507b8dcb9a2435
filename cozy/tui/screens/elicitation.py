"""An MCP server's form (elicitation) as a modal: one input per field of its schema.

Fields start at the schema's defaults; Submit checks types, choices and required
fields and says what is wrong in the form itself; Decline tells the server no; Esc
cancels. Dismisses with (action, content) as the MCP client callback returns it.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

if TYPE_CHECKING:
    from textual.app import ComposeResult

Answer = tuple[str, dict[str, Any] | None]


def _choices(prop: dict[str, Any]) -> list[Any]:
    items = prop.get("items") if prop.get("type") == "array" else None
    source = items if isinstance(items, dict) else prop
    if isinstance(source.get("enum"), list):
        return list(source["enum"])
    return [
        o.get("const") for o in source.get("oneOf") or source.get("anyOf") or [] if "const" in o
    ]


def _label(name: str, prop: dict[str, Any], required: bool) -> str:
    kind = str(prop.get("type", "string"))
    parts = [kind + (" (comma-separated)" if kind == "array" else "")]
    choices = _choices(prop)
    if choices:
        parts.append("one of " + ", ".join(str(c) for c in choices))
    if required:
        parts.append("required")
    desc = prop.get("description") or prop.get("title") or ""
    return f"{name} ({'; '.join(parts)})" + (f" — {desc}" if desc else "")


def _default(prop: dict[str, Any]) -> str:
    value = prop.get("default")
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def convert(raw: str, prop: dict[str, Any]) -> Any:
    """The typed value of one field; ValueError says what is wrong."""
    kind = prop.get("type", "string")
    choices = _choices(prop)
    if kind == "boolean":
        if raw.lower() not in ("y", "yes", "true", "1", "n", "no", "false", "0"):
            raise ValueError("answer yes or no")
        return raw.lower() in ("y", "yes", "true", "1")
    if kind == "integer":
        return int(raw)
    if kind == "number":
        return float(raw)
    if kind == "array":
        values = [v.strip() for v in raw.split(",") if v.strip()]
        bad = [v for v in values if choices and v not in choices]
        if bad:
            raise ValueError(f"{', '.join(bad)}: not one of {', '.join(map(str, choices))}")
        return values
    if choices and raw not in choices:
        raise ValueError(f"not one of {', '.join(map(str, choices))}")
    return raw


class ElicitationScreen(ModalScreen[Answer]):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]  # noqa: RUF012 - Textual's convention

    def __init__(
        self,
        server: str,
        message: str,
        schema: dict[str, Any],
        answer: asyncio.Future[Answer] | None = None,
    ) -> None:
        super().__init__()
        # resolved directly: the request comes from the MCP session's task, where a
        # push_screen callback would be routed to whatever message pump that task saw
        self.answer = answer
        self.server, self.message = server, message
        self.props: dict[str, dict[str, Any]] = dict(schema.get("properties") or {})
        self.required = set(schema.get("required") or [])

    def compose(self) -> ComposeResult:
        with Vertical(id="elicitation", classes="dialog"):
            yield Static(f"MCP server '{self.server}' asks:", classes="title", markup=False)
            yield Static(self.message[:2000], markup=False)
            with VerticalScroll(classes="fields"):
                for name, prop in self.props.items():
                    yield Static(_label(name, prop, name in self.required), markup=False)
                    yield Input(value=_default(prop), id=f"f-{name}")
            yield Static("", id="problem", classes="note", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Submit", id="submit", variant="primary")
                yield Button("Decline", id="decline", variant="error")

    def values(self) -> tuple[dict[str, Any], list[str]]:
        out: dict[str, Any] = {}
        problems: list[str] = []
        for name, prop in self.props.items():
            raw = self.query_one(f"#f-{name}", Input).value.strip()
            if not raw:
                if name in self.required:
                    problems.append(f"{name} is required")
                continue
            try:
                out[name] = convert(raw, prop)
            except ValueError as exc:
                problems.append(f"{name}: {exc}")
        return out, problems

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "decline":
            self.finish(("decline", None))
            return
        content, problems = self.values()
        if problems:
            self.query_one("#problem", Static).update("; ".join(problems))
            return
        self.finish(("accept", content))

    def finish(self, value: Answer) -> None:
        if self.answer is not None and not self.answer.done():
            self.answer.set_result(value)
        if self.is_attached:
            self.dismiss(value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.focus_next()

    def action_cancel(self) -> None:
        self.finish(("cancel", None))
