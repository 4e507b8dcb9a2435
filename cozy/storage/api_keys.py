"""API keys for the server: stored hashed, shown once, revocable.

A key is `sk-cozy-<24 random url-safe bytes>`. Only its SHA-256 is stored (keys are
high-entropy random, so a slow password hash buys nothing); lookups go by hash.
The visible `prefix` (first 12 characters) identifies a key in listings.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from cozy.core.errors import NotFoundError, UsageError
from cozy.storage.rows import from_row
from cozy.storage.schema import metadata, new_id, utcnow
from cozy.storage.store import Store

KEY_PREFIX = "sk-cozy-"
ROLES = ("user", "admin")

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(64), sa.ForeignKey("users.id"), nullable=False),
    sa.Column("role", sa.String(16), nullable=False, server_default="user"),
    sa.Column("name", sa.String(200), nullable=True),
    sa.Column("prefix", sa.String(32), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=True),
    sa.Column("revoked_at", sa.Float, nullable=True),
    sa.Index("ix_api_keys_user", "user_id"),
)


@dataclass(slots=True)
class ApiKeyRow:
    id: str
    user_id: str
    role: str
    name: str | None
    prefix: str
    created_at: float
    expires_at: float | None
    revoked_at: float | None

    @property
    def active(self) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > utcnow()


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _row(r: sa.Row[object]) -> ApiKeyRow:
    return from_row(ApiKeyRow, r)


class ApiKeys:
    """API key operations over the shared Store (same SQL on SQLite and Postgres)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def create(
        self,
        user_id: str,
        *,
        role: str = "user",
        name: str | None = None,
        expires_at: float | None = None,
    ) -> tuple[str, ApiKeyRow]:
        """Create a key; returns (the key in clear — shown once, the stored row)."""
        if role not in ROLES:
            raise UsageError(f"unknown role '{role}'", hint="use --role user or --role admin")
        if not user_id.strip():
            raise UsageError("the user id is empty", hint="pass --user NAME")
        await self.store.ensure_user(user_id, role=role)
        key = KEY_PREFIX + secrets.token_urlsafe(24)
        row = ApiKeyRow(
            id=new_id("key"),
            user_id=user_id,
            role=role,
            name=name,
            prefix=key[:12],
            created_at=utcnow(),
            expires_at=expires_at,
            revoked_at=None,
        )

        async def insert(conn: AsyncConnection) -> None:
            await conn.execute(
                sa.insert(api_keys).values(
                    id=row.id,
                    user_id=user_id,
                    role=role,
                    name=name,
                    prefix=row.prefix,
                    key_hash=hash_key(key),
                    created_at=row.created_at,
                    expires_at=expires_at,
                )
            )

        await self.store.write(insert)
        return key, row

    async def verify(self, key: str) -> ApiKeyRow | None:
        """The active key row for this clear key, or None."""
        if not key.startswith(KEY_PREFIX):
            return None
        rows = await self.store.read(
            sa.select(api_keys).where(api_keys.c.key_hash == hash_key(key))
        )
        if not rows:
            return None
        row = _row(rows[0])
        return row if row.active else None

    async def list(self, user_id: str | None = None, *, all_: bool = False) -> list[ApiKeyRow]:
        stmt = sa.select(api_keys).order_by(api_keys.c.created_at)
        if user_id is not None:
            stmt = stmt.where(api_keys.c.user_id == user_id)
        if not all_:
            stmt = stmt.where(api_keys.c.revoked_at.is_(None))
        return [_row(r) for r in await self.store.read(stmt)]

    async def revoke(self, key_id_or_prefix: str) -> ApiKeyRow:
        match = sa.or_(api_keys.c.id == key_id_or_prefix, api_keys.c.prefix == key_id_or_prefix)
        rows = await self.store.read(sa.select(api_keys).where(match))
        if len(rows) != 1:
            what = "no" if not rows else "more than one"
            raise NotFoundError(
                f"{what} API key matches '{key_id_or_prefix}'",
                hint="pass the key id shown by `cozy keys list`",
            )
        row = _row(rows[0])

        async def update(conn: AsyncConnection) -> None:
            await conn.execute(
                sa.update(api_keys).where(api_keys.c.id == row.id).values(revoked_at=utcnow())
            )

        await self.store.write(update)
        row.revoked_at = utcnow()
        return row
