"""A memory row as the engine sees it (everything but the vector and hash)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cozy.storage.tables.memory import memories


@dataclass(slots=True)
class MemoryRow:
    id: str
    user_id: str
    kind: str
    text: str
    status: str
    personality_id: str | None
    session_id: str | None
    source_message_ids: list[str]
    occurred_at: float | None
    created_at: float
    updated_at: float
    deleted_at: float | None
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "text": self.text,
            "status": self.status,
            "personality_id": self.personality_id,
            "session_id": self.session_id,
            "source_message_ids": self.source_message_ids,
            "occurred_at": self.occurred_at,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "deleted_at": self.deleted_at,
            "metadata": self.metadata,
        }


_ROW_COLS = [
    c for c in memories.c if c.name not in ("embedding", "embed_model", "text_hash", "context")
]


def _row(r: Any) -> MemoryRow:
    m = r._mapping
    return MemoryRow(
        id=m["id"],
        user_id=m["user_id"],
        kind=m["kind"],
        text=m["text"],
        status=m["status"],
        personality_id=m["personality_id"],
        session_id=m["session_id"],
        source_message_ids=list(m["source_message_ids"] or []),
        occurred_at=m["occurred_at"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        deleted_at=m["deleted_at"],
        metadata=dict(m["metadata"] or {}),
    )


def to_blob(vec: Sequence[float] | None) -> bytes | None:
    import numpy as np

    if vec is None:
        return None
    return np.asarray(vec, dtype=np.float32).tobytes()
