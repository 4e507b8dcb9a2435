"""mem0's answers as the records `cozy memory` and the TUI browser show.

mem0 keeps memories as dicts with ISO timestamps and an event history (ADD, UPDATE,
DELETE); cozy's faces want `MemoryRecord`s and history rows shaped like memory.local's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

MAX_LISTED = 10_000  # mem0 lists by top_k; a user's whole memory fits well under this


def epoch(value: Any) -> float | None:
    """mem0's ISO timestamps as epoch seconds (what the faces print)."""
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


@dataclass(slots=True)
class Mem0Record:
    id: str
    text: str
    user_id: str
    created_at: float | None = None
    updated_at: float | None = None
    kind: str = "fact"
    status: str = "active"
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, item: dict[str, Any]) -> Mem0Record:
        return cls(
            id=str(item.get("id", "")),
            text=str(item.get("memory", "")),
            user_id=str(item.get("user_id", "")),
            created_at=epoch(item.get("created_at")),
            updated_at=epoch(item.get("updated_at") or item.get("created_at")),
            metadata=dict(item.get("metadata") or {}),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "text": self.text,
            "status": self.status,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "metadata": self.metadata,
        }


def history_row(item: dict[str, Any]) -> dict[str, Any]:
    """One mem0 history event as memory.local's history rows (action, old/new text)."""
    return {
        "memory_id": item.get("memory_id"),
        "action": str(item.get("event") or "").lower(),
        "old_text": item.get("old_memory"),
        "new_text": item.get("new_memory"),
        "reason": "mem0",
        "created_at": epoch(item.get("created_at")),
    }
