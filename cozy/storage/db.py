"""Database engines: SQLite (WAL, busy timeout) locally, Postgres in server mode.

A database file that is not SQLite is never touched: we say so and stop.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from cozy.core.errors import StorageError, StorageUnavailable

T = TypeVar("T")

SQLITE_HEADER = b"SQLite format 3\x00"


def sqlite_path(url: str) -> Path | None:
    if not url.startswith("sqlite"):
        return None
    _, _, rest = url.partition(":///")
    if not rest or rest.startswith(":memory:"):
        return None
    return Path(rest.split("?", 1)[0])


def check_sqlite_file(path: Path) -> None:
    """Refuse a file that exists but is not a SQLite database (never overwrite it)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        return
    try:
        with path.open("rb") as fh:
            header = fh.read(16)
    except OSError as exc:
        raise StorageError(
            f"cannot read the database {path} ({exc.strerror})",
            hint="fix its permissions or point COZY_HOME elsewhere",
        ) from exc
    if header and header != SQLITE_HEADER:
        raise StorageError(
            f"{path} is not a SQLite database (corrupt or overwritten); cozy left it untouched",
            hint="move it aside (e.g. `mv cozy.db cozy.db.bad`) and cozy will start a new one, "
            "or set COZY_HOME to another directory",
        )


def create_engine(
    url: str,
    *,
    busy_timeout_ms: int = 5000,
    pool_size: int = 20,
    max_overflow: int = 10,
    connect_timeout: float = 5.0,
    statement_timeout: float = 15.0,
) -> AsyncEngine:
    """Build the async engine for a URL (sqlite+aiosqlite or postgresql+asyncpg).

    Postgres: every wait is bounded, so a server that accepts and then never answers
    (a frozen host, a dropped route) costs a request seconds and a 503, not minutes:
    connecting and waiting for a pooled connection by `connect_timeout`, each statement
    (pre-ping included) by `statement_timeout` (asyncpg's client-side timer, which also
    covers a dead network where a server-side `statement_timeout` never fires)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("sqlite:///"):
        url = "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    path = sqlite_path(url)
    if path is not None:
        check_sqlite_file(path)
        engine = create_async_engine(url, connect_args={"timeout": busy_timeout_ms / 1000})
        sqlite_pragmas(engine, busy_timeout_ms)
        return engine
    if url.startswith("sqlite"):
        engine = create_async_engine(url)
        sqlite_pragmas(engine, busy_timeout_ms)
        return engine
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
        pool_timeout=connect_timeout,
        connect_args={"timeout": connect_timeout, "command_timeout": statement_timeout},
    )


def sqlite_pragmas(engine: AsyncEngine | Engine, busy_timeout_ms: int) -> None:
    target = engine.sync_engine if isinstance(engine, AsyncEngine) else engine

    @event.listens_for(target, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()


def is_locked(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "database is locked" in text or "database table is locked" in text


_GONE = ("connect", "shutting down", "starting up", "terminating connection", "recovery mode")


def is_unreachable(orig: BaseException) -> bool:
    """The server is down, restarting or dropped us (Postgres): worth a retry later."""
    if isinstance(orig, (OSError, ConnectionError)):
        return True
    text = f"{type(orig).__name__} {orig}".lower()
    return any(word in text for word in _GONE)


def translate(exc: BaseException, url: str) -> StorageError:
    """Map driver errors to a StorageError naming the fix."""
    orig = getattr(exc, "orig", exc)
    where = sqlite_path(url) or url.split("@")[-1]
    if is_locked(exc):
        return StorageError(
            f"the database {where} stayed locked by another process",
            hint="close the other cozy process or raise COZY_DB_BUSY_TIMEOUT_MS",
        )
    if isinstance(orig, sqlite3.DatabaseError) and "not a database" in str(orig):
        return StorageError(
            f"{where} is corrupt (not a database); cozy left it untouched",
            hint="move it aside and cozy will start a new one, or set COZY_HOME elsewhere",
        )
    if isinstance(orig, sqlite3.DatabaseError) and "malformed" in str(orig):
        return StorageError(
            f"{where} is damaged ({orig}); cozy left it untouched",
            hint=f'try `sqlite3 {where} ".recover" | sqlite3 recovered.db`, then move the '
            "damaged file aside and put recovered.db in its place; or move it aside and "
            "cozy starts a new one (`cozy import FILE` brings back an export)",
        )
    path = sqlite_path(url)
    if path is not None:
        from cozy.storage.disk import explain_sqlite

        clear = explain_sqlite(orig, path)
        if clear is not None:
            return clear
    if isinstance(orig, TimeoutError | PoolTimeout):
        return StorageUnavailable(
            f"the database at {where} did not answer in time",
            hint="check that the server runs and is reachable (COZY_DATABASE_URL); "
            "COZY_DB_STATEMENT_TIMEOUT / COZY_DB_CONNECT_TIMEOUT set the limits",
        )
    if is_unreachable(orig):
        return StorageUnavailable(
            f"cannot connect to the database at {where} ({orig})",
            hint="check that the server runs and COZY_DATABASE_URL is right",
        )
    return StorageError(f"database error on {where}: {orig}")


async def with_retry(fn: Callable[[], Awaitable[T]], *, attempts: int = 5) -> T:
    """Retry a write when SQLite reports a lock that outlived busy_timeout."""
    delay = 0.05
    for attempt in range(attempts):
        try:
            return await fn()
        except (OperationalError, DBAPIError) as exc:
            if not is_locked(exc) or attempt == attempts - 1:
                raise
            await asyncio.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")
