"""The context panel: what went into the last answer (from the ContextBuilt event)."""

from __future__ import annotations

from typing import Any

from textual.containers import VerticalScroll
from textual.widgets import Static

from cozy.core.events import ContextMeta


def describe_context(meta: ContextMeta | None) -> str:
    """Plain-text rendering of ContextBuilt metadata (also used by tests)."""
    if not meta:
        return (
            "No answer yet.\nThe memories, profile slots and knowledge\n"
            "behind each answer show here."
        )
    lines: list[str] = []
    engines: dict[str, Any] = meta.get("engines") or {}
    enabled = meta.get("enabled_engines") or []
    lines.append("Engines")
    if not enabled and not engines:
        lines.append("  none enabled (memory, profile, knowledge are off in engines.yaml)")
    for name in sorted(set(enabled) | set(engines)):
        info = engines.get(name) or {}
        latency = info.get("latency_ms")
        mark = " ⚠" if info.get("degraded") else ""
        lines.append(f"  {name}: {latency:.0f} ms{mark}" if latency is not None else f"  {name}")
    reasons = meta.get("degrade_reasons") or []
    if reasons:
        lines.append("")
        lines.append("Degraded")
        lines.extend(f"  ⚠ {r}" for r in reasons)
    lines.append("")
    memories = meta.get("memories") or []
    lines.append(f"Memories ({len(memories)})")
    for m in memories:
        lines.append(f"  • {m.get('text', m.get('id', '?'))} ({float(m.get('score') or 0):.2f})")
    slots = meta.get("profile_slots") or []
    lines.append("")
    lines.append(f"Profile slots ({len(slots)})")
    lines.extend(f"  • {s}" for s in slots)
    knowledge = meta.get("knowledge") or []
    lines.append("")
    lines.append(f"Knowledge ({len(knowledge)})")
    for i, k in enumerate(knowledge, 1):
        score = float(k.get("score") or 0)
        lines.append(f"  [{i}] {k.get('citation') or k.get('id')} ({score:.2f})")
    budget = meta.get("token_budget") or {}
    if budget.get("limit"):
        lines.append("")
        lines.append(f"Tokens: {budget.get('used', 0):,} of {budget['limit']:,}")
    return "\n".join(lines)


class ContextPanel(VerticalScroll):
    def __init__(self) -> None:
        super().__init__(id="context-panel")
        self.metadata: ContextMeta | None = None
        self.border_title = "Context"

    def compose(self):  # type: ignore[no-untyped-def]
        yield Static(describe_context(None), id="context-text", markup=False)

    def show(self, metadata: ContextMeta | None) -> None:
        self.metadata = metadata
        self.query_one("#context-text", Static).update(describe_context(metadata))
