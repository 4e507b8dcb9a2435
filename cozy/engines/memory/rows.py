"""A memory row as the engine sees it (everything but the vector and hash)."""

from __future__ import annotations

import json
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


# SQLite's own SQL for a search's candidate rows: SQLAlchemy's compile of the expanding
# IN list and its per-row result processing were 0.58 ms of 87 rows against 0.30 raw
# (100k memories); the two JSON columns are decoded here as sa.JSON would (json.loads).
_RAW_COLS = ", ".join(c.name for c in _ROW_COLS)
RAW_CHUNK = 500  # ids per statement: far below SQLite's bound-variable limit


def raw_by_ids(count: int) -> str:
    return f"SELECT {_RAW_COLS} FROM memories WHERE id IN ({','.join('?' * count)})"


def raw_row(r: Sequence[Any]) -> MemoryRow:
    """A row of `raw_by_ids`, columns in `_ROW_COLS` order."""
    sources, meta = r[7], r[12]
    return MemoryRow(
        id=r[0],
        user_id=r[1],
        kind=r[2],
        text=r[3],
        status=r[4],
        personality_id=r[5],
        session_id=r[6],
        source_message_ids=list((json.loads(sources) if sources is not None else None) or []),
        occurred_at=r[8],
        created_at=r[9],
        updated_at=r[10],
        deleted_at=r[11],
        metadata=dict((json.loads(meta) if meta is not None else None) or {}),
    )


def to_blob(vec: Sequence[float] | None) -> bytes | None:
    import numpy as np

    if vec is None:
        return None
    return np.asarray(vec, dtype=np.float32).tobytes()
