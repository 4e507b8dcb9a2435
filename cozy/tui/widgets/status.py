"""The status bar: personality, model, tokens, last latency, degraded indicator."""

from __future__ import annotations

from dataclasses import dataclass

from textual.widgets import Static


@dataclass
class StatusInfo:
    personality: str = "?"
    model: str = "?"
    why: str = ""  # why this provider answers, when `auto` chose it
    tokens: int = 0
    latency_ms: float | None = None
    degraded: bool = False
    running: bool = False
    recording: bool = False
    session: str = "new session"


class StatusBar(Static):
    def __init__(self) -> None:
        super().__init__("", id="status", markup=False)
        self.info = StatusInfo()

    def set(self, **values: object) -> None:
        for key, value in values.items():
            setattr(self.info, key, value)
        self.update(self.render_text())
        self.set_class(self.info.degraded, "-degraded")

    def render_text(self) -> str:
        i = self.info
        model = f"{i.model} (auto: {i.why})" if i.why else i.model
        parts = [i.personality, model, f"{i.tokens:,} tok"]
        if i.latency_ms is not None:
            ms = i.latency_ms
            parts.append(f"{ms / 1000:.1f} s" if ms >= 1000 else f"{ms:.0f} ms")
        if i.degraded:
            parts.append("⚠ degraded")
        if i.recording:
            parts.append("● recording: ctrl+t sends")
        parts.append("answering… esc cancels" if i.running else "f1 help")
        return " · ".join(parts)
