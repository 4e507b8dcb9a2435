"""The store's plumbing: engine, open/close with migrations, write and read paths.

Writes go one at a time per process on SQLite (writelock.py), are retried while
the file is locked, and on a SQLite file run in one worker-thread hop each
(sqlite_thread.py). Driver errors become cozy StorageErrors.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Self, TypeVar

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cozy.core.errors import StorageError
from cozy.storage import db, migrations
from cozy.storage.sqlite_thread import NeedsLoop, SQLiteThread
from cozy.storage.writelock import WriteQueue

T = TypeVar("T")


class StoreBase:
    """One SQLAlchemy engine and its write/read paths. Open with `await Store.open(url)`."""

    def __init__(self, engine: AsyncEngine, url: str) -> None:
        self.engine = engine
        self.url = url
        self._users_seen: set[str] = set()
        self._queue = WriteQueue() if url.startswith("sqlite") else None  # one writer
        self._thread: SQLiteThread | None = None  # SQLite file: one thread hop per txn

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        busy_timeout_ms: int = 5000,
        migrate: bool = True,
        pool_size: int = 20,
        max_overflow: int = 10,
        connect_timeout: float = 5.0,
        statement_timeout: float = 15.0,
    ) -> Self:
        engine = db.create_engine(
            url,
            busy_timeout_ms=busy_timeout_ms,
            pool_size=pool_size,
            max_overflow=max_overflow,
            connect_timeout=connect_timeout,
            statement_timeout=statement_timeout,
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
        except (OperationalError, DBAPIError, OSError, PoolTimeout) as exc:
            await engine.dispose()
            raise db.translate(exc, url) from exc
        if db.sqlite_path(url) is not None:
            store._thread = SQLiteThread(
                engine.url.render_as_string(hide_password=False),
                busy_timeout_ms=busy_timeout_ms,
                pragmas=lambda e: db.sqlite_pragmas(e, busy_timeout_ms),
            )
        return store

    async def close(self) -> None:
        if self._thread is not None:
            self._thread.close()
        await self.engine.dispose()

    # --- plumbing ----------------------------------------------------------
    @property
    def sqlite_thread(self) -> SQLiteThread | None:
        """The worker thread that runs a SQLite file's statements (None on Postgres or
        in-memory SQLite): engines with a batch of sync statements use its read()."""
        return self._thread

    async def write(self, fn: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run `fn` in one write transaction, retried while SQLite is locked.

        On a SQLite file every write first tries the worker thread: a step that awaits
        anything besides its connection raises NeedsLoop there before committing, is
        rolled back and runs here instead, so no caller has to say which kind it is.
        Running a step twice is safe because the retry on a locked file replays steps
        already. (Every write step in the tree only awaits its connection today.)
        """

        async def attempt() -> T:
            if self._thread is not None:
                try:
                    return await self._thread.write(fn)
                except NeedsLoop:  # rolled back: run it on the event loop instead
                    pass
            async with self.engine.begin() as conn:
                return await fn(conn)

        async def retrying() -> T:
            return await db.with_retry(attempt)

        try:
            return await (self._queue.run(retrying) if self._queue else retrying())
        except (
            OperationalError,
            DBAPIError,
            OSError,
            PoolTimeout,
        ) as exc:  # OSError: asyncpg connect
            raise db.translate(exc, self.url) from exc

    async def read(self, stmt: Any, params: dict[str, Any] | None = None) -> list[Any]:
        return await self.read_with(lambda c: list(c.execute(stmt, params or {}).fetchall()))

    async def read_with(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn` on a sync connection: on a SQLite file, in one worker-thread hop.

        Several statements then cost one hop, not one each (under load a hop waits for
        a core: it was most of a small search's time).
        """
        try:
            if self._thread is not None:
                return await self._thread.read(fn)
            async with self.engine.connect() as conn:
                return await conn.run_sync(fn)
        except (OperationalError, DBAPIError, OSError, PoolTimeout) as exc:
            raise db.translate(exc, self.url) from exc

    async def check_writable(self) -> str:
        """Raise a StorageError saying why a turn could not be stored right now (full or
        read-only disk, a read-only or unreachable database); else a short detail."""
        import asyncio

        import sqlalchemy as sa

        path = db.sqlite_path(self.url)
        if path is not None:
            from cozy.storage.disk import free_bytes, probe

            await asyncio.to_thread(probe, path.parent)
            await self.migration_status()  # the file itself is readable
            free = free_bytes(path.parent) or 0
            return f"sqlite {path} writable ({free // (1024 * 1024)} MiB free)"
        rows = await self.read(sa.text("SHOW transaction_read_only"))
        if rows and str(rows[0][0]).lower() == "on":
            from cozy.core.errors import StorageReadOnly

            raise StorageReadOnly(
                "the database is read-only (a standby, or default_transaction_read_only)",
                hint="point COZY_DATABASE_URL at the primary",
            )
        return "postgres writable"

    async def migration_status(self) -> dict[str, list[str]]:
        try:
            async with self.engine.connect() as conn:
                return await conn.run_sync(migrations.status)
        except (OperationalError, DBAPIError, OSError, PoolTimeout) as exc:
            raise db.translate(exc, self.url) from exc
