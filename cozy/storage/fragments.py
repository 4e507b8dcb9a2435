"""`-f` fragments kept once, by the sha256 of their text.

A turn's user message keeps the text the model saw and lists the fragments' hashes in
its metadata; this table holds each distinct text once, so `cozy fragments list/show`
can say what was attached and when, however many turns attached it. Rows are never
rewritten: the hash is the text's identity, so a second insert is a no-op. Same SQL
on SQLite and Postgres (each dialect's INSERT ... ON CONFLICT DO NOTHING).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from cozy.core.errors import NotFoundError, UsageError
from cozy.storage.schema import create_all, metadata, utcnow
from cozy.storage.store import Store

fragments = sa.Table(
    "fragments",
    metadata,
    sa.Column("hash", sa.String(64), primary_key=True),  # sha256 hex of the UTF-8 text
    sa.Column("source", sa.Text, nullable=False),  # where it came from the first time
    sa.Column("size", sa.Integer, nullable=False),  # characters
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

TABLES = [fragments]


def create_tables(conn: Connection) -> None:
    """Migration step: the fragments table."""
    create_all(conn, TABLES)


@dataclass(slots=True)
class FragmentRow:
    hash: str
    source: str
    size: int
    created_at: float
    content: str = ""


class Fragments:
    """Fragment store over the shared Store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def save(self, items: Sequence[tuple[str, str, str]]) -> int:
        """Keep each (hash, source, text) unless that hash is kept already.
        Returns how many were new."""
        if not items:
            return 0
        now = utcnow()
        rows = {
            h: {"hash": h, "source": src, "size": len(text), "content": text, "created_at": now}
            for h, src, text in items
        }

        async def insert(conn: AsyncConnection) -> int:
            from sqlalchemy.dialects import postgresql, sqlite

            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            new = 0
            for values in rows.values():
                stmt = dialect.insert(fragments).values(**values).on_conflict_do_nothing()
                new += int((await conn.execute(stmt)).rowcount or 0)
            return new

        return await self.store.write(insert)

    async def list(self) -> list[FragmentRow]:
        """Every kept fragment, newest first, without its text."""
        c = fragments.c
        stmt = sa.select(c.hash, c.source, c.size, c.created_at).order_by(
            c.created_at.desc(), c.hash
        )
        return [FragmentRow(*r) for r in await self.store.read(stmt)]

    async def get(self, ref: str) -> FragmentRow:
        """The fragment whose hash is `ref` or starts with it (a unique prefix)."""
        ref = ref.strip().lower()
        if not ref or any(ch not in "0123456789abcdef" for ch in ref):
            raise UsageError(
                f"'{ref}' is not a fragment hash",
                hint="pass a hash or its start as `cozy fragments list` prints it",
            )
        c = fragments.c
        # hex only (checked above), so the prefix has no LIKE wildcards to escape
        stmt = (
            sa.select(c.hash, c.source, c.size, c.created_at, c.content)
            .where(c.hash.like(ref + "%"))
            .order_by(c.hash)
            .limit(2)
        )
        rows = await self.store.read(stmt)
        if not rows:
            raise NotFoundError(
                f"no fragment '{ref}'", hint="list fragments with `cozy fragments list`"
            )
        if len(rows) > 1:
            raise UsageError(
                f"'{ref}' starts more than one fragment's hash",
                hint="give more characters of the hash (see `cozy fragments list`)",
            )
        return FragmentRow(*rows[0])
