"""Remembered tool approvals: "always allow this tool for this personality".

One row per (user, personality, tool). The tool loop checks it before asking the
face's approver and writes it when the user answers "always"; `cozy tools grants`
lists and revokes rows. Same SQL on SQLite and Postgres.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from cozy.storage.schema import metadata, new_id, utcnow
from cozy.storage.store import Store

tool_grants = sa.Table(
    "tool_grants",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(64), nullable=False),
    sa.Column("personality_id", sa.String(64), nullable=False),
    sa.Column("tool", sa.String(200), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.UniqueConstraint("user_id", "personality_id", "tool", name="uq_tool_grants"),
)


@dataclass(slots=True)
class GrantRow:
    user_id: str
    personality_id: str
    tool: str
    created_at: float


class ToolGrants:
    """Grant store over the shared Store (implements core's `GrantStore` protocol)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def is_granted(self, user_id: str, personality_id: str, tool: str) -> bool:
        t = tool_grants.c
        rows = await self.store.read(
            sa.select(t.id).where(
                t.user_id == user_id, t.personality_id == personality_id, t.tool == tool
            )
        )
        return bool(rows)

    async def add_grant(self, user_id: str, personality_id: str, tool: str) -> bool:
        """Remember a grant. False when it existed already."""

        values = {
            "id": new_id("grant"),
            "user_id": user_id,
            "personality_id": personality_id,
            "tool": tool,
            "created_at": utcnow(),
        }

        async def insert(conn: AsyncConnection) -> bool:
            from sqlalchemy.dialects import postgresql, sqlite

            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            stmt = dialect.insert(tool_grants).values(**values).on_conflict_do_nothing()
            return bool((await conn.execute(stmt)).rowcount)

        return await self.store.write(insert)

    async def list_grants(
        self, user_id: str, *, personality_id: str | None = None
    ) -> list[GrantRow]:
        t = tool_grants.c
        stmt = sa.select(t.user_id, t.personality_id, t.tool, t.created_at).where(
            t.user_id == user_id
        )
        if personality_id is not None:
            stmt = stmt.where(t.personality_id == personality_id)
        stmt = stmt.order_by(t.personality_id, t.tool)
        return [GrantRow(*r) for r in await self.store.read(stmt)]

    async def revoke(
        self, user_id: str, *, tool: str | None = None, personality_id: str | None = None
    ) -> int:
        """Delete matching grants (all of the user's when no filter). Returns the count."""
        t = tool_grants.c

        async def delete(conn: AsyncConnection) -> int:
            stmt = sa.delete(tool_grants).where(t.user_id == user_id)
            if tool is not None:
                stmt = stmt.where(t.tool == tool)
            if personality_id is not None:
                stmt = stmt.where(t.personality_id == personality_id)
            return int((await conn.execute(stmt)).rowcount or 0)

        return await self.store.write(delete)
