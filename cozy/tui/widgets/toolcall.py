"""A tool call's row in the chat: name and arguments, then what the tool says while it
runs (MCP progress, the last few lines its server logged) and its result (with the
images or audio it returned, by type and size)."""

from __future__ import annotations

import json
from collections import deque
from typing import Any

from textual.widgets import Static

LOG_LINES = 3  # the newest lines a server logged during the call stay on its row


def short(value: str, limit: int = 300) -> str:
    value = value.strip()
    return value if len(value) <= limit else value[: limit - 1] + "…"


def media_line(media: list[dict[str, Any]]) -> str:
    """`🖼 image/png 91 B (shown to the model)`, one per image or audio clip."""
    parts = []
    for m in media:
        icon = "🖼" if m.get("type") == "image" else "🔊"
        size = int(m.get("bytes") or 0)
        shown = f"{size} B" if size < 10_000 else f"{size / 1024:.0f} KB"
        note = " (shown to the model)" if m.get("to_model") else " (not shown to the model)"
        parts.append(f"{icon} {m.get('mime') or '?'} {shown}{note}")
    return "  ".join(parts)


class ToolCallView(Static):
    """A tool call inline: name and arguments, then result, duration and decision."""

    def __init__(self, call_id: str, name: str, arguments: str, level: str | None) -> None:
        self.call_id = call_id
        self.tool_name = name
        self.arguments = arguments
        self.level = level or "?"
        self.state = "running"
        self.result = ""
        self.progress_text = ""  # the server's last progress notification
        self.log_lines: deque[str] = deque(maxlen=LOG_LINES)
        self.logged = 0  # log lines received, shown or not
        self.media: list[dict[str, Any]] = []
        super().__init__(self._render_text(), classes="tool", markup=False)

    def _render_text(self) -> str:
        try:
            args = json.dumps(json.loads(self.arguments or "{}"), ensure_ascii=False)
        except ValueError:
            args = self.arguments
        head = f"⚙ {self.tool_name}({short(args, 200)}) [{self.level}]"
        logs = "".join(f"\n  · {line}" for line in self.log_lines)
        if self.logged > len(self.log_lines):
            logs = f"\n  · ({self.logged - len(self.log_lines)} earlier log lines)" + logs
        if self.state == "running":
            return f"{head} …{f' {self.progress_text}' if self.progress_text else ''}{logs}"
        if self.state == "approval":
            return f"{head} waiting for your approval"
        media = f"\n  {media_line(self.media)}" if self.media else ""
        return f"{head}{logs}\n  → {short(self.result)}{media}"

    def copy(self) -> ToolCallView:
        """A new view showing the same (to mount again after being unmounted)."""
        view = ToolCallView(self.call_id, self.tool_name, self.arguments, self.level)
        view.state, view.result = self.state, self.result
        view.progress_text = self.progress_text
        view.log_lines, view.logged = deque(self.log_lines, maxlen=LOG_LINES), self.logged
        view.media = list(self.media)
        view.set_class(self.has_class("-error"), "-error")
        view.update(view._render_text())
        return view

    def progress(self, done: float | None, total: float | None, message: str | None) -> None:
        if self.state != "running":
            return
        count = f"{done:g}/{total:g}" if done is not None and total else f"{done or 0:g}"
        self.progress_text = f"{count} {message or ''}".strip()
        self.update(self._render_text())

    def add_log(self, server: str, level: str, text: str) -> None:
        """A message the tool's server logged during the call (already filtered by level
        and bounded per call by the turn)."""
        self.logged += 1
        self.log_lines.append(short(f"{server} {level}: {text}", 200))
        self.update(self._render_text())

    def waiting(self) -> None:
        self.state = "approval"
        self.update(self._render_text())

    def done(
        self,
        content: str,
        *,
        is_error: bool,
        duration_ms: float,
        decision: str,
        media: list[dict[str, Any]] | None = None,
    ) -> None:
        self.state = "error" if is_error else "ok"
        extra = f"{duration_ms:.0f} ms" + ("" if decision == "auto" else f", {decision}")
        self.result = f"{content}  ({extra})"
        self.media = list(media or [])
        self.set_class(is_error, "-error")
        self.update(self._render_text())
