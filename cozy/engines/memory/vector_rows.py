"""The SQL behind a user's vector index (memory/local.py `index`): the whole matrix on
a first search, then only the memories written since, with the count of vectors that
says whether the incremental refresh left the index complete."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cozy.storage.store import Store
from cozy.storage.tables.memory import memories

if TYPE_CHECKING:
    import numpy as np

Changed = list[tuple[str, bytes | None, str]]  # (id, vector blob, status)


class VectorRows:
    """Part of `MemoryRepo` (memory/repo.py): the reads of the vector columns."""

    store: Store

    async def has_vectors(self) -> bool:
        rows = await self.store.read(
            sa.select(memories.c.id).where(memories.c.embedding.is_not(None)).limit(1)
        )
        return bool(rows)

    async def vectors(self, user_id: str) -> tuple[list[str], np.ndarray, list[str | None]]:
        """Ids, the float32 matrix and the embed model of every active memory of a user."""
        import numpy as np

        rows = await self.store.read(
            sa.select(memories.c.id, memories.c.embedding, memories.c.embed_model)
            .where(*_with_vector(user_id))
            .order_by(memories.c.id)
        )
        if not rows:
            return [], np.zeros((0, 0), dtype=np.float32), []
        ids = [r[0] for r in rows]
        mat = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32)
        return ids, mat.reshape(len(ids), -1), [r[2] for r in rows]

    async def changes(self, user_id: str, since: float) -> tuple[Changed, int]:
        """(id, vector blob, status) of the memories written at or after `since`, and
        how many active memories have a vector: one read (one thread hop on SQLite)."""
        changed = sa.select(memories.c.id, memories.c.embedding, memories.c.status).where(
            memories.c.user_id == user_id, memories.c.updated_at >= since
        )
        count = sa.select(sa.func.count()).where(*_with_vector(user_id))

        def run(conn: Connection) -> tuple[Changed, int]:
            rows = conn.execute(changed).fetchall()
            n = conn.execute(count).scalar_one()
            return [(str(r[0]), r[1], str(r[2])) for r in rows], int(n)

        return await self.store.read_with(run)


def _with_vector(user_id: str) -> list[Any]:
    """The active memories of a user that have a vector."""
    return [
        memories.c.user_id == user_id,
        memories.c.status == "active",
        memories.c.embedding.is_not(None),
    ]
