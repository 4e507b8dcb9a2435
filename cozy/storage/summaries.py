"""Rolling session summaries: each row covers a span of a session's messages.

A summary never replaces the stored messages. Regenerating one marks the old
rows superseded (kept, visible in history) and writes a new one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from cozy.storage.rows import from_row, message_of
from cozy.storage.schema import messages, metadata, new_id, utcnow
from cozy.storage.store import Store

session_summaries = sa.Table(
    "session_summaries",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("session_id", sa.String(64), nullable=False),
    sa.Column("first_message_id", sa.String(64), nullable=False),
    sa.Column("last_message_id", sa.String(64), nullable=False),
    sa.Column("message_count", sa.Integer, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("model", sa.String(200), nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("superseded_at", sa.Float, nullable=True),
    sa.Index("ix_summaries_session", "session_id", "created_at"),
)


@dataclass(slots=True)
class Summary:
    id: str
    session_id: str
    first_message_id: str
    last_message_id: str
    message_count: int
    text: str
    model: str | None
    created_at: float
    superseded_at: float | None

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


def _row(r: Any) -> Summary:
    return from_row(Summary, r)


class SummaryStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def latest(self, session_id: str) -> Summary | None:
        """The current summary of a session (one indexed lookup: on the hot path)."""
        t = session_summaries
        rows = await self.store.read(
            sa.select(t)
            .where(t.c.session_id == session_id, t.c.superseded_at.is_(None))
            .order_by(t.c.created_at.desc())
            .limit(1)
        )
        return _row(rows[0]) if rows else None

    async def history(self, session_id: str) -> list[Summary]:
        t = session_summaries
        rows = await self.store.read(
            sa.select(t).where(t.c.session_id == session_id).order_by(t.c.created_at)
        )
        return [_row(r) for r in rows]

    async def add(
        self, session_id: str, first_id: str, last_id: str, count: int, text: str, model: str | None
    ) -> Summary:
        row = Summary(
            new_id("sum"), session_id, first_id, last_id, count, text, model, utcnow(), None
        )

        async def write(conn: AsyncConnection) -> None:
            await conn.execute(sa.insert(session_summaries).values(**row.to_dict()))

        await self.store.write(write)
        return row

    async def supersede_all(self, session_id: str) -> int:
        async def write(conn: AsyncConnection) -> int:
            res = await conn.execute(
                sa.update(session_summaries)
                .where(
                    session_summaries.c.session_id == session_id,
                    session_summaries.c.superseded_at.is_(None),
                )
                .values(superseded_at=utcnow())
            )
            return int(res.rowcount or 0)

        return await self.store.write(write)

    async def unsummarized(
        self, session_id: str, *, after: str | None, keep_recent: int, limit: int
    ) -> list[Any]:
        """Messages after `after` and older than the newest `keep_recent`, oldest first."""
        newest = (
            sa.select(messages.c.id)
            .where(messages.c.session_id == session_id)
            .order_by(messages.c.id.desc())
            .limit(keep_recent)
            .subquery()
        )
        stmt = sa.select(messages).where(
            messages.c.session_id == session_id, messages.c.id.not_in(sa.select(newest.c.id))
        )
        if after is not None:
            stmt = stmt.where(messages.c.id > after)
        rows = await self.store.read(stmt.order_by(messages.c.id).limit(limit))
        # summarised as the model saw them: attached fragments put back in place
        return await self.store.with_fragments([message_of(r) for r in rows])
