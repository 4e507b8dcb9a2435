"""The SQL store: users, sessions, messages, audit events.

One code path for SQLite and Postgres (SQLAlchemy Core). Rows come back as small
dataclasses; no ORM objects leak out of storage.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cozy.core.errors import NotFoundError, StorageError
from cozy.storage import db, migrations
from cozy.storage.rows import (
    MessageRow,
    NewMessage,
    SessionRow,
    _insert_session,
    _message,
    _session,
)
from cozy.storage.schema import audit_events, messages, new_id, sessions, users, utcnow
from cozy.storage.writelock import WriteQueue

T = TypeVar("T")

__all__ = ["MessageRow", "NewMessage", "OutboxHook", "SessionRow", "Store", "TxnStep"]
OutboxHook = Callable[[AsyncConnection, str, list[dict[str, Any]]], Awaitable[None]]
TxnStep = Callable[[AsyncConnection], Awaitable[Any]]


class Store:
    """Async store over one SQLAlchemy engine. Open with `await Store.open(url)`."""

    def __init__(self, engine: AsyncEngine, url: str) -> None:
        self.engine = engine
        self.url = url
        self._users_seen: set[str] = set()
        # Called inside the add_messages transaction: background jobs (storage/jobs.py)
        # are queued atomically with the messages they come from (an outbox).
        self.outbox: list[OutboxHook] = []
        self._queue = WriteQueue() if url.startswith("sqlite") else None  # one writer

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        busy_timeout_ms: int = 5000,
        migrate: bool = True,
        pool_size: int = 20,
        max_overflow: int = 10,
    ) -> Store:
        engine = db.create_engine(
            url, busy_timeout_ms=busy_timeout_ms, pool_size=pool_size, max_overflow=max_overflow
        )
        store = cls(engine, url)
        try:
            if migrate:
                await db.with_retry(lambda: migrations.upgrade(engine))
            else:
                async with engine.connect() as conn:
                    done = await conn.run_sync(migrations.applied)
                migrations.check_not_newer(done)
        except StorageError:
            await engine.dispose()
            raise
        except (OperationalError, DBAPIError, OSError) as exc:
            await engine.dispose()
            raise db.translate(exc, url) from exc
        return store

    async def close(self) -> None:
        await self.engine.dispose()

    # --- plumbing ----------------------------------------------------------
    async def _write(self, fn: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        async def attempt() -> T:
            async with self.engine.begin() as conn:
                return await fn(conn)

        async def retrying() -> T:
            return await db.with_retry(attempt)

        try:
            return await (self._queue.run(retrying) if self._queue else retrying())
        except (OperationalError, DBAPIError, OSError) as exc:  # OSError: asyncpg connect
            raise db.translate(exc, self.url) from exc

    async def _read(self, stmt: Any) -> list[Any]:
        try:
            async with self.engine.connect() as conn:
                return list((await conn.execute(stmt)).fetchall())
        except (OperationalError, DBAPIError, OSError) as exc:
            raise db.translate(exc, self.url) from exc

    async def migration_status(self) -> dict[str, list[str]]:
        try:
            async with self.engine.connect() as conn:
                return await conn.run_sync(migrations.status)
        except (OperationalError, DBAPIError, OSError) as exc:
            raise db.translate(exc, self.url) from exc

    # --- users -------------------------------------------------------------
    async def ensure_user(
        self, user_id: str, *, name: str | None = None, role: str = "user"
    ) -> None:
        if user_id in self._users_seen:
            return
        rows = await self._read(sa.select(users.c.id).where(users.c.id == user_id))
        if not rows:

            async def insert(conn: AsyncConnection) -> None:
                exists = (
                    await conn.execute(sa.select(users.c.id).where(users.c.id == user_id))
                ).first()
                if exists is None:
                    await conn.execute(
                        sa.insert(users).values(
                            id=user_id, name=name or user_id, role=role, created_at=utcnow()
                        )
                    )

            await self._write(insert)
        self._users_seen.add(user_id)

    # --- sessions ----------------------------------------------------------
    async def create_session(
        self,
        user_id: str,
        personality_id: str,
        *,
        title: str | None = None,
        model: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> SessionRow:
        await self.ensure_user(user_id)
        row = self.new_session_row(
            user_id, personality_id, title=title, model=model, metadata=metadata
        )
        await self.insert_session(row)
        return row

    @staticmethod
    def new_session_row(
        user_id: str,
        personality_id: str,
        *,
        title: str | None = None,
        model: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> SessionRow:
        """A session not stored yet: `insert_session` it, or pass it to `add_messages`."""
        now = utcnow()
        return SessionRow(
            id=new_id("ses"),
            user_id=user_id,
            personality_id=personality_id,
            title=title,
            model=model,
            created_at=now,
            updated_at=now,
            metadata=metadata or {},
        )

    async def insert_session(self, row: SessionRow) -> None:
        """Store a row from `new_session_row` (its user must exist: `ensure_user`)."""

        async def insert(conn: AsyncConnection) -> None:
            await conn.execute(_insert_session(row))

        await self._write(insert)

    async def get_session(
        self, session_id: str, *, user_id: str | None = None, include_deleted: bool = False
    ) -> SessionRow:
        """Return the session or raise NotFoundError (also for another user's session)."""
        rows = await self._read(self._session_stmt(session_id, user_id, include_deleted))
        if not rows:
            raise NotFoundError(
                f"no session '{session_id}'", hint="list sessions with `cozy sessions list`"
            )
        return _session(rows[0])

    @staticmethod
    def _session_stmt(
        session_id: str, user_id: str | None = None, include_deleted: bool = False
    ) -> Any:
        stmt = sa.select(sessions).where(sessions.c.id == session_id)
        if user_id is not None:
            stmt = stmt.where(sessions.c.user_id == user_id)
        if not include_deleted:
            stmt = stmt.where(sessions.c.deleted_at.is_(None))
        return stmt

    async def last_session(self, user_id: str) -> SessionRow | None:
        rows = await self._read(
            sa.select(sessions)
            .where(sessions.c.user_id == user_id, sessions.c.deleted_at.is_(None))
            .order_by(sessions.c.updated_at.desc())
            .limit(1)
        )
        return _session(rows[0]) if rows else None

    async def list_sessions(
        self,
        user_id: str,
        *,
        limit: int = 50,
        offset: int = 0,
        query: str | None = None,
        include_deleted: bool = False,
    ) -> list[SessionRow]:
        count = (
            sa.select(sa.func.count())
            .select_from(messages)
            .where(messages.c.session_id == sessions.c.id)
            .scalar_subquery()
            .label("message_count")
        )
        stmt = sa.select(sessions, count).where(sessions.c.user_id == user_id)
        if not include_deleted:
            stmt = stmt.where(sessions.c.deleted_at.is_(None))
        if query:
            like = f"%{query}%"
            matching = sa.select(messages.c.session_id).where(messages.c.content.ilike(like))
            stmt = stmt.where(sa.or_(sessions.c.title.ilike(like), sessions.c.id.in_(matching)))
        stmt = stmt.order_by(sessions.c.updated_at.desc(), sessions.c.id.desc())
        rows = await self._read(stmt.limit(limit).offset(offset))
        return [_session(r) for r in rows]

    async def update_session(self, session_id: str, user_id: str, **values: Any) -> None:
        allowed = {"title", "model", "personality_id", "metadata", "deleted_at"}
        bad = set(values) - allowed
        if bad:
            raise StorageError(f"cannot update session fields {sorted(bad)}")
        values["updated_at"] = utcnow()

        async def update(conn: AsyncConnection) -> int:
            res = await conn.execute(
                sa.update(sessions)
                .where(sessions.c.id == session_id, sessions.c.user_id == user_id)
                .values(**values)
            )
            return int(res.rowcount or 0)

        if await self._write(update) == 0:
            raise NotFoundError(
                f"no session '{session_id}'", hint="list sessions with `cozy sessions list`"
            )

    async def delete_session(self, session_id: str, user_id: str) -> None:
        await self.get_session(session_id, user_id=user_id)
        await self.update_session(session_id, user_id, deleted_at=utcnow())

    async def restore_session(self, session_id: str, user_id: str) -> None:
        await self.update_session(session_id, user_id, deleted_at=None)

    # --- messages ----------------------------------------------------------
    async def add_messages(
        self,
        session_id: str,
        items: Sequence[NewMessage],
        *,
        touch_title: str | None = None,
        also: Sequence[TxnStep] = (),
        create: SessionRow | None = None,
    ) -> list[str]:
        """Insert messages in one transaction and bump the session's updated_at.

        `also`: more writes (e.g. queueing a job) done in the same transaction;
        `create`: a `new_session_row` stored first, in the same transaction.
        """
        now = utcnow()
        rows = []
        for i, m in enumerate(items):
            rows.append(
                {
                    "id": m.id or new_id("msg"),
                    "session_id": session_id,
                    "role": m.role,
                    "content": m.content,
                    "tool_calls": m.tool_calls,
                    "tool_call_id": m.tool_call_id,
                    "name": m.name,
                    "status": m.status,
                    "metadata": m.metadata or {},
                    "prompt_tokens": m.prompt_tokens,
                    "completion_tokens": m.completion_tokens,
                    "latency_ms": m.latency_ms,
                    "created_at": now + i * 1e-6,
                }
            )

        async def insert(conn: AsyncConnection) -> None:
            if create is not None:
                await conn.execute(_insert_session(create))
            if rows:
                await conn.execute(sa.insert(messages), rows)
                for hook in self.outbox:
                    await hook(conn, session_id, rows)
            for step in also:
                await step(conn)
            values: dict[str, Any] = {"updated_at": now}
            if touch_title:  # one statement: keep a title, set one on an untitled session
                values["title"] = sa.func.coalesce(sessions.c.title, touch_title[:300])
            await conn.execute(
                sa.update(sessions).where(sessions.c.id == session_id).values(**values)
            )

        await self._write(insert)
        return [r["id"] for r in rows]

    async def add_message(self, session_id: str, message: NewMessage) -> str:
        return (await self.add_messages(session_id, [message]))[0]

    async def update_message(self, message_id: str, **values: Any) -> None:
        async def update(conn: AsyncConnection) -> None:
            await conn.execute(
                sa.update(messages).where(messages.c.id == message_id).values(**values)
            )

        await self._write(update)

    async def session_window(
        self, session_id: str, user_id: str, limit: int
    ) -> tuple[SessionRow, list[MessageRow]]:
        """A live session of this user and its last `limit` messages: one connection."""
        try:
            async with self.engine.connect() as conn:
                found = (await conn.execute(self._session_stmt(session_id, user_id))).first()
                if found is None:
                    raise NotFoundError(
                        f"no session '{session_id}'",
                        hint="list sessions with `cozy sessions list`",
                    )
                recent = self._recent_stmt(session_id, limit) if limit > 0 else None
                rows = list((await conn.execute(recent)).fetchall()) if recent is not None else []
        except (OperationalError, DBAPIError, OSError) as exc:
            raise db.translate(exc, self.url) from exc
        return _session(found), [_message(r) for r in reversed(rows)]

    @staticmethod
    def _recent_stmt(session_id: str, limit: int) -> Any:
        return (
            sa.select(messages)
            .where(messages.c.session_id == session_id)
            .order_by(messages.c.id.desc())
            .limit(limit)
        )

    async def recent_messages(self, session_id: str, limit: int) -> list[MessageRow]:
        """The last `limit` messages of a session, oldest first."""
        if limit <= 0:
            return []
        rows = await self._read(self._recent_stmt(session_id, limit))
        return [_message(r) for r in reversed(rows)]

    async def list_messages(
        self, session_id: str, *, limit: int | None = None, offset: int = 0
    ) -> list[MessageRow]:
        stmt = (
            sa.select(messages)
            .where(messages.c.session_id == session_id)
            .order_by(messages.c.id)
            .offset(offset)
        )
        if limit is not None:
            stmt = stmt.limit(limit)
        return [_message(r) for r in await self._read(stmt)]

    # --- audit -------------------------------------------------------------
    async def add_audit(self, kind: str, **values: Any) -> str:
        event_id = new_id("aud")

        async def insert(conn: AsyncConnection) -> None:
            await conn.execute(
                sa.insert(audit_events).values(
                    id=event_id, created_at=utcnow(), kind=kind, **values
                )
            )

        await self._write(insert)
        return event_id

    async def list_audit(
        self, *, user_id: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        stmt = sa.select(audit_events).order_by(audit_events.c.id.desc()).limit(limit)
        if user_id is not None:
            stmt = stmt.where(audit_events.c.user_id == user_id)
        return [dict(r._mapping) for r in await self._read(stmt)]
