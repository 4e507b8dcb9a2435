"""Users for the server: who exists and who is active (`users.status`).

A disabled user's API keys and JWTs are refused (within the server's auth cache
time); enabling restores them. Users are created by `cozy keys create` / `cozy token
issue` (or by the first local turn).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from cozy.core.errors import NotFoundError
from cozy.storage.schema import users
from cozy.storage.store import Store

ACTIVE = "active"
DISABLED = "disabled"


@dataclass(slots=True, frozen=True)
class UserRow:
    id: str
    role: str
    status: str
    created_at: float

    @property
    def active(self) -> bool:
        return self.status == ACTIVE


class Users:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def get(self, user_id: str) -> UserRow | None:
        rows = await self.store.read(
            sa.select(users.c.id, users.c.role, users.c.status, users.c.created_at).where(
                users.c.id == user_id
            )
        )
        return UserRow(*rows[0]) if rows else None

    async def list(self) -> list[UserRow]:
        stmt = sa.select(users.c.id, users.c.role, users.c.status, users.c.created_at)
        return [UserRow(*r) for r in await self.store.read(stmt.order_by(users.c.id))]

    async def set_status(self, user_id: str, status: str) -> UserRow:
        if await self.get(user_id) is None:
            raise NotFoundError(
                f"no user '{user_id}'",
                hint="see `cozy users list`; users are made by `cozy keys create --user NAME`",
            )

        async def update(conn: AsyncConnection) -> None:
            await conn.execute(sa.update(users).where(users.c.id == user_id).values(status=status))

        await self.store.write(update)
        row = await self.get(user_id)
        assert row is not None
        return row
