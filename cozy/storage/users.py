"""Users for the server: who exists, who is active (`users.status`), and the budget an
operator set for them (`user_budgets`, `cozy users set-budget`).

A disabled user's API keys and JWTs are refused (within the server's auth cache
time); enabling restores them. Users are created by `cozy keys create` / `cozy token
issue` (or by the first local turn). A stored budget reaches a running server with the
same read that checks the status, so it applies within the same cache time.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from cozy.core.errors import NotFoundError, UsageError
from cozy.storage.schema import metadata, users, utcnow
from cozy.storage.store import Store

ACTIVE = "active"

# One row per user with a budget of their own; a NULL field keeps the server's budget
# (COZY_SERVER_BUDGETS), 0 means no such budget for this user.
user_budgets = sa.Table(
    "user_budgets",
    metadata,
    sa.Column("user_id", sa.String(64), sa.ForeignKey("users.id"), primary_key=True),
    sa.Column("tokens_day", sa.BigInteger, nullable=True),
    sa.Column("tokens_month", sa.BigInteger, nullable=True),
    sa.Column("usd_day", sa.Float, nullable=True),
    sa.Column("usd_month", sa.Float, nullable=True),
    sa.Column("updated_at", sa.Float, nullable=False),
)


@dataclass(slots=True, frozen=True)
class BudgetOverride:
    """A user's stored budget. None: the server's budget for that field; 0: none."""

    tokens_day: int | None = None
    tokens_month: int | None = None
    usd_day: float | None = None
    usd_month: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def describe(self) -> str:
        """`tokens_day=1000 usd_month=none`: what is set, for `cozy users list`."""
        parts = []
        for name, value in self.as_dict().items():
            if value is not None:
                parts.append(f"{name}={'none' if value == 0 else _num(value)}")
        return " ".join(parts)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


BUDGET_FIELDS = tuple(f.name for f in fields(BudgetOverride))


@dataclass(slots=True, frozen=True)
class UserRow:
    id: str
    role: str
    status: str
    created_at: float
    budget: BudgetOverride | None = None  # None: the server's budgets apply unchanged

    @property
    def active(self) -> bool:
        return self.status == ACTIVE


def _select() -> sa.Select[Any]:
    b = user_budgets.c
    return sa.select(
        users.c.id,
        users.c.role,
        users.c.status,
        users.c.created_at,
        b.user_id,
        b.tokens_day,
        b.tokens_month,
        b.usd_day,
        b.usd_month,
    ).select_from(users.outerjoin(user_budgets, user_budgets.c.user_id == users.c.id))


def _row(r: Any) -> UserRow:
    budget = None
    if r[4] is not None:  # the user has a budget row
        tokens_day, tokens_month = (int(v) if v is not None else None for v in r[5:7])
        budget = BudgetOverride(tokens_day, tokens_month, r[7], r[8])
    return UserRow(r[0], r[1], r[2], r[3], budget)


class Users:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def get(self, user_id: str) -> UserRow | None:
        """The user with their budget: one query (the server's auth reads it)."""
        rows = await self.store.read(_select().where(users.c.id == user_id))
        return _row(rows[0]) if rows else None

    async def list(self) -> list[UserRow]:
        return [_row(r) for r in await self.store.read(_select().order_by(users.c.id))]

    async def _existing(self, user_id: str) -> None:
        if await self.get(user_id) is None:
            raise NotFoundError(
                f"no user '{user_id}'",
                hint="see `cozy users list`; users are made by `cozy keys create --user NAME`",
            )

    async def set_status(self, user_id: str, status: str) -> UserRow:
        await self._existing(user_id)

        async def update(conn: AsyncConnection) -> None:
            await conn.execute(sa.update(users).where(users.c.id == user_id).values(status=status))

        await self.store.write(update)
        return await self._reread(user_id)

    async def set_budget(self, user_id: str, **values: float | None) -> UserRow:
        """Set the named budget fields (0: none for this user); fields not named keep
        what was stored before (or the server's budget)."""
        given = {k: v for k, v in values.items() if v is not None}
        unknown = sorted(set(values) - set(BUDGET_FIELDS))
        if unknown or not given:
            raise UsageError(
                f"no budget to set{f' (unknown: {unknown})' if unknown else ''}",
                hint="name at least one of --tokens-day, --tokens-month, --usd-day, "
                "--usd-month (0 = no such budget), or --clear",
            )
        negative = [k for k, v in given.items() if v < 0]
        if negative:
            raise UsageError(
                f"a budget cannot be negative: {', '.join(negative)}",
                hint="use a positive amount, or 0 for no such budget",
            )
        row = {k: (int(v) if k.startswith("tokens") else float(v)) for k, v in given.items()}
        return await self._upsert_budget(user_id, row)

    async def replace_budget(self, user_id: str, budget: BudgetOverride) -> UserRow:
        """Store exactly `budget` for the user (the HTTP PUT): fields it leaves None are the
        server's; a budget with no field set is the same as `clear_budget`."""
        values = budget.as_dict()
        if all(v is None for v in values.values()):
            return await self.clear_budget(user_id)
        if any(v is not None and v < 0 for v in values.values()):
            raise UsageError("a budget cannot be negative", hint="use 0 for no such budget")
        return await self._upsert_budget(user_id, values)

    async def _upsert_budget(self, user_id: str, values: dict[str, Any]) -> UserRow:
        """Update the named fields only, or insert: fields not named stay as they were
        (on a new row NULL: the server's)."""
        await self._existing(user_id)

        async def upsert(conn: AsyncConnection) -> None:
            done = await conn.execute(
                sa.update(user_budgets)
                .where(user_budgets.c.user_id == user_id)
                .values(**values, updated_at=utcnow())
            )
            if done.rowcount == 0:
                await conn.execute(
                    sa.insert(user_budgets).values(user_id=user_id, **values, updated_at=utcnow())
                )

        await self.store.write(upsert)
        return await self._reread(user_id)

    async def clear_budget(self, user_id: str) -> UserRow:
        """Drop the user's stored budget: the server's budgets apply again."""
        await self._existing(user_id)

        async def delete(conn: AsyncConnection) -> None:
            await conn.execute(sa.delete(user_budgets).where(user_budgets.c.user_id == user_id))

        await self.store.write(delete)
        return await self._reread(user_id)

    async def _reread(self, user_id: str) -> UserRow:
        row = await self.get(user_id)
        assert row is not None
        return row
