"""SQL access for the memory engine (SQLAlchemy Core; SQLite and Postgres).

Every write goes through `MemoryRepo.write(fn)`: one transaction that also bumps
the user's version, so other processes know their vector matrix is stale.

The reads of the vector columns (a user's matrix and what changed since) are
memory/vector_rows.py; the rows' Python shape is memory/rows.py.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from cozy.core.errors import NotFoundError
from cozy.engines.memory.rows import (
    _ROW_COLS,
    RAW_CHUNK,
    MemoryRow,
    _row,
    raw_by_ids,
    raw_row,
    to_blob,
)
from cozy.engines.memory.texthash import text_hash
from cozy.engines.memory.vector_rows import VectorRows
from cozy.engines.retrieval.keyword import Filter, KeywordIndex, KeywordTable
from cozy.engines.retrieval.terms import query_terms
from cozy.storage.schema import new_id, utcnow
from cozy.storage.store import Store
from cozy.storage.tables.memory import memories, memory_history, memory_versions

T = TypeVar("T")

__all__ = ["MemoryRepo", "MemoryRow", "to_blob"]  # the row type used to live here


# built once: a search reads its candidates' rows by id, with a new IN list each time
_BY_IDS = sa.select(*_ROW_COLS).where(memories.c.id.in_(sa.bindparam("ids", expanding=True)))


class MemoryRepo(VectorRows):
    """The memory tables' SQL; the vector columns' reads are memory/vector_rows.py."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.dialect = store.engine.dialect.name
        self.keywords = keyword_index(store)
        # called with the user ids after a write committed (other instances: Redis)
        self.on_write: Callable[[list[str]], Awaitable[None]] | None = None

    async def write(self, user_id: str, fn: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        async def txn(conn: AsyncConnection) -> T:
            result = await fn(conn)
            await self._bump(conn, user_id)
            return result

        result = await self.store.write(txn)
        if self.on_write is not None:
            await self.on_write([user_id])
        return result

    async def _bump(self, conn: AsyncConnection, user_id: str) -> None:
        res = await conn.execute(
            sa.update(memory_versions)
            .where(memory_versions.c.user_id == user_id)
            .values(version=memory_versions.c.version + 1)
        )
        if not res.rowcount:
            await conn.execute(sa.insert(memory_versions).values(user_id=user_id, version=1))

    async def version(self, user_id: str) -> int:
        rows = await self.store.read(
            sa.select(memory_versions.c.version).where(memory_versions.c.user_id == user_id)
        )
        return int(rows[0][0]) if rows else 0

    # --- writes (inside a transaction) -----------------------------------------
    @staticmethod
    async def insert(
        conn: AsyncConnection,
        *,
        user_id: str,
        kind: str,
        text: str,
        vector: Sequence[float] | None = None,
        embed_model: str | None = None,
        context: str | None = None,
        personality_id: str | None = None,
        session_id: str | None = None,
        source_ids: Sequence[str] = (),
        occurred_at: float | None = None,
        metadata: dict[str, Any] | None = None,
        reason: str | None = None,
        memory_id: str | None = None,
    ) -> str:
        now = utcnow()
        mid = memory_id or new_id("mem")
        await conn.execute(
            sa.insert(memories).values(
                id=mid,
                user_id=user_id,
                kind=kind,
                text=text,
                text_hash=text_hash(text),
                context=context,
                status="active",
                personality_id=personality_id,
                session_id=session_id,
                source_message_ids=list(source_ids),
                occurred_at=occurred_at if occurred_at is not None else now,
                created_at=now,
                updated_at=now,
                embedding=to_blob(vector),
                embed_model=embed_model if vector is not None else None,
                metadata=metadata or {},
            )
        )
        if kind == "fact":
            await MemoryRepo.history(conn, mid, user_id, "add", None, text, reason, source_ids)
        return mid

    @staticmethod
    async def history(
        conn: AsyncConnection,
        memory_id: str,
        user_id: str,
        action: str,
        old: str | None,
        new: str | None,
        reason: str | None,
        source_ids: Sequence[str] = (),
    ) -> None:
        await conn.execute(
            sa.insert(memory_history).values(
                id=new_id("mhi"),
                memory_id=memory_id,
                user_id=user_id,
                action=action,
                old_text=old,
                new_text=new,
                reason=reason,
                source_message_ids=list(source_ids),
                created_at=utcnow(),
            )
        )

    @staticmethod
    async def update_text(
        conn: AsyncConnection,
        row: MemoryRow,
        text: str,
        *,
        action: str,
        reason: str | None,
        vector: Sequence[float] | None,
        embed_model: str | None,
        source_ids: Sequence[str] = (),
    ) -> None:
        sources = list(dict.fromkeys([*row.source_message_ids, *source_ids]))
        await conn.execute(
            sa.update(memories)
            .where(memories.c.id == row.id)
            .values(
                text=text,
                text_hash=text_hash(text),
                embedding=to_blob(vector),
                embed_model=embed_model if vector is not None else None,
                source_message_ids=sources,
                updated_at=utcnow(),
            )
        )
        await MemoryRepo.history(
            conn, row.id, row.user_id, action, row.text, text, reason, source_ids
        )

    @staticmethod
    async def set_status(
        conn: AsyncConnection, row: MemoryRow, status: str, *, action: str, reason: str | None
    ) -> None:
        now = utcnow()
        await conn.execute(
            sa.update(memories)
            .where(memories.c.id == row.id)
            .values(status=status, updated_at=now, deleted_at=now if status == "deleted" else None)
        )
        await MemoryRepo.history(conn, row.id, row.user_id, action, row.text, row.text, reason)

    # --- reads -----------------------------------------------------------------
    async def get(self, memory_id: str, user_id: str) -> MemoryRow:
        rows = await self.store.read(
            sa.select(*_ROW_COLS).where(memories.c.id == memory_id, memories.c.user_id == user_id)
        )
        if not rows:
            raise NotFoundError(
                f"no memory '{memory_id}'", hint="list memories with `cozy memory list`"
            )
        return _row(rows[0])

    async def get_many(self, ids: Sequence[str]) -> dict[str, MemoryRow]:
        if not ids:
            return {}

        wanted = list(ids)

        def run(conn: Connection) -> dict[str, MemoryRow]:  # on SQLite: in the worker thread
            if self.dialect != "sqlite":
                return {r.id: _row(r) for r in conn.execute(_BY_IDS, {"ids": wanted})}
            out: dict[str, MemoryRow] = {}
            for at in range(0, len(wanted), RAW_CHUNK):
                part = tuple(wanted[at : at + RAW_CHUNK])
                for r in conn.exec_driver_sql(raw_by_ids(len(part)), part):
                    out[r[0]] = raw_row(r)
            return out

        return await self.store.read_with(run)

    async def list_rows(
        self,
        user_id: str,
        *,
        kinds: Sequence[str] = ("fact",),
        statuses: Sequence[str] = ("active",),
        limit: int | None = 100,
        offset: int = 0,
    ) -> list[MemoryRow]:
        stmt = (
            sa.select(*_ROW_COLS)
            .where(memories.c.user_id == user_id)
            .where(memories.c.kind.in_(list(kinds)), memories.c.status.in_(list(statuses)))
            .order_by(memories.c.updated_at.desc(), memories.c.id.desc())
            .offset(offset)
        )
        if limit is not None:
            stmt = stmt.limit(limit)
        return [_row(r) for r in await self.store.read(stmt)]

    async def history_of(self, memory_id: str, user_id: str) -> list[dict[str, Any]]:
        await self.get(memory_id, user_id)
        rows = await self.store.read(
            sa.select(memory_history)
            .where(memory_history.c.memory_id == memory_id)
            .order_by(memory_history.c.created_at, memory_history.c.id)
        )
        return [dict(r._mapping) for r in rows]

    async def find_hash(self, conn: AsyncConnection, user_id: str, text: str) -> str | None:
        row = (
            await conn.execute(
                sa.select(memories.c.id).where(
                    memories.c.user_id == user_id,
                    memories.c.text_hash == text_hash(text),
                    memories.c.kind == "fact",
                    memories.c.status == "active",
                )
            )
        ).first()
        return str(row[0]) if row else None

    async def last_turn(self, user_id: str, session_id: str) -> tuple[str, str] | None:
        """(id, text) of the newest active turn of a session."""
        rows = await self.store.read(
            sa.select(memories.c.id, memories.c.text)
            .where(memories.c.user_id == user_id, memories.c.session_id == session_id)
            .where(memories.c.kind == "turn", memories.c.status == "active")
            .order_by(memories.c.id.desc())
            .limit(1)
        )
        return (str(rows[0][0]), str(rows[0][1])) if rows else None

    @staticmethod
    async def link_next(conn: AsyncConnection, prev_id: str, next_id: str, text: str) -> None:
        """A turn learns the turn that followed it: neighbour link and keyword context."""
        row = (
            await conn.execute(
                sa.select(memories.c.context, memories.c.metadata).where(memories.c.id == prev_id)
            )
        ).first()
        if row is None:
            return
        meta = dict(row[1] or {})
        meta["next"] = next_id
        context = "\n".join(filter(None, [row[0], text])) or None
        await conn.execute(
            sa.update(memories)
            .where(memories.c.id == prev_id)
            .values(context=context, metadata=meta)
        )

    async def turn_order(self, user_id: str, session_ids: set[str | None]) -> dict[str, int]:
        """Position of every active turn of these sessions (ids sort by time)."""
        rows = await self.store.read(
            sa.select(memories.c.id, memories.c.session_id)
            .where(memories.c.user_id == user_id, memories.c.kind == "turn")
            .where(memories.c.session_id.in_([s for s in session_ids if s]))
            .where(memories.c.status == "active")
            .order_by(memories.c.session_id, memories.c.id)
        )
        order: dict[str, int] = {}
        last, pos = None, 0
        for r in rows:
            pos += 1000 if r.session_id != last else 1  # sessions never touch
            last = r.session_id
            order[r.id] = pos
        return order

    async def set_vectors(
        self, user_id: str, items: Sequence[tuple[str, Sequence[float]]], model: str
    ) -> None:
        async def fn(conn: AsyncConnection) -> None:
            for mid, vec in items:
                await conn.execute(
                    sa.update(memories)
                    .where(memories.c.id == mid)
                    .values(embedding=to_blob(vec), embed_model=model)
                )

        await self.write(user_id, fn)

    async def keyword(
        self,
        user_id: str,
        query: str,
        limit: int,
        kinds: Sequence[str] | None = None,
        started: threading.Event | None = None,
    ) -> list[tuple[str, float]]:
        """(id, score) by BM25 (SQLite FTS5) or ts_rank x IDF (Postgres), best first:
        this user's active memories (of these kinds). `started`: KeywordIndex.search."""
        scope = Filter(["m.user_id = :u", "m.status = 'active'"], {"u": user_id})
        if kinds:
            scope.where.append("m.kind IN (" + ",".join(f":k{i}" for i in range(len(kinds))) + ")")
            scope.params.update({f"k{i}": k for i, k in enumerate(kinds)})
        found = await self.keywords.search(query_terms(query), limit, scope, started=started)
        return [(str(mid), score) for mid, score in found]


MEMORIES = KeywordTable("memories", "m", fts="memories_fts", fts_key="rowid")


def keyword_index(store: Store, context_weight: float = 0.35, budget: int = 5000) -> KeywordIndex:
    """BM25 over a memory's text and, at `context_weight`, its neighbouring turns
    (`context`: FTS5's second column; on Postgres the tsv's weight B, migration step
    `0009_pg_memory_context_tsv`). Document frequencies are cached for 5 minutes: memories
    change with every turn, and a plan needs only their order of magnitude."""
    return KeywordIndex(
        store,
        MEMORIES,
        fts_weights=(1.0, context_weight),
        pg_weights=(0.0, 0.0, context_weight, 1.0),
        budget=budget,
        ttl=300.0,
    )
