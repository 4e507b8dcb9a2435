"""SQLite transactions in one worker-thread hop each (the store's hot path).

aiosqlite runs every DB-API call (cursor, execute, fetch, close, commit) as its own
hop to the connection's thread and back to the event loop, so a chat turn's ~15
statements cost ~60 loop wake-ups: most of the orchestrator's own time. Here a
whole read or write transaction runs on a plain sqlite3 connection (SQLAlchemy's
pysqlite dialect, same schema and types) in a worker thread: one hop there, one back.

A write step is the same `async def step(conn)` the aiosqlite path takes. It is
driven to completion in the thread, where `conn.execute` returns at once. A step
that awaits anything else (a lock, the network, a sleep) cannot finish there: it
raises `NeedsLoop`, the transaction rolls back, and the caller runs it the
ordinary way. Hand-written because no library bridges async SQLAlchemy steps onto
a sync connection; it is small and only used for SQLite files.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncConnection

T = TypeVar("T")


class NeedsLoop(Exception):
    """A transaction step awaited something other than the connection."""


class ThreadConn:
    """What a step sees of its connection: `execute`, `scalar`, `run_sync`, `dialect`."""

    def __init__(self, sync_connection: Connection) -> None:
        self.sync_connection = sync_connection
        self.dialect = sync_connection.dialect

    async def execute(self, statement: Any, parameters: Any = None, **kw: Any) -> Any:
        return self.sync_connection.execute(statement, parameters, **kw)

    async def scalar(self, statement: Any, parameters: Any = None, **kw: Any) -> Any:
        return self.sync_connection.scalar(statement, parameters, **kw)

    async def run_sync(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        return fn(self.sync_connection, *args, **kw)


def drive(awaitable: Awaitable[T]) -> T:
    """Run a coroutine that never suspends to its end, on this thread, without a loop."""
    if not asyncio.iscoroutine(awaitable):
        raise NeedsLoop("not a coroutine")
    coro = awaitable
    try:
        coro.send(None)
    except StopIteration as done:
        return cast(T, done.value)
    except RuntimeError as exc:  # e.g. get_running_loop() or a loop-bound lock
        if "event loop" in str(exc):
            raise NeedsLoop(str(exc)) from exc
        raise
    coro.close()
    raise NeedsLoop("the step awaited something besides its connection")


class SQLiteThread:
    """A sync engine on the same SQLite file plus a small pool of worker threads."""

    def __init__(
        self, url: str, *, busy_timeout_ms: int, pragmas: Callable[[Engine], None]
    ) -> None:
        sync_url = url.replace("sqlite+aiosqlite://", "sqlite+pysqlite://", 1)
        self.engine = sa.create_engine(sync_url, connect_args={"timeout": busy_timeout_ms / 1000})
        pragmas(self.engine)
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="cozy-sqlite")

    async def _hop(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, work)

    async def read(self, fn: Callable[[Connection], T]) -> T:
        def work() -> T:
            with self.engine.connect() as conn:
                return fn(conn)

        return await self._hop(work)

    async def write(self, step: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run `step` in one transaction in the thread (raises NeedsLoop, rolled back)."""

        def work() -> T:
            with self.engine.begin() as conn:
                return drive(step(cast(AsyncConnection, ThreadConn(conn))))

        return await self._hop(work)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.engine.dispose()
