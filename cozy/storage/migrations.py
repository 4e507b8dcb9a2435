"""Schema migrations as named steps recorded in `schema_migrations`.

Every step is listed here, in order, so any cozy process knows the full set and
can refuse a database that carries a step it does not know (a newer cozy wrote
it). Each step runs in its own transaction with its record, so a failed step is
rolled back whole (Postgres has transactional DDL; on SQLite the step's DDL is
written so a rerun is safe). A step that adds a column to an existing table
must check the inspector first, because step 1 creates tables from the current
schema on an empty database.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from cozy.core.errors import StorageError
from cozy.storage import schema

Step = Callable[[Connection], None]


def _create(*tables: sa.Table) -> Step:
    def step(conn: Connection) -> None:
        for table in tables:
            table.create(conn, checkfirst=True)

    return step


def _lazy_tables(module: str, conn: Connection) -> None:
    """Create the `TABLES` of a module that owns them (imported only when the step runs)."""
    import importlib

    for table in importlib.import_module(module).TABLES:
        table.create(conn, checkfirst=True)


def _lazy_step(module: str, conn: Connection) -> None:
    import importlib

    importlib.import_module(module).create_keyword_index(conn)


def _memory_turn_context(conn: Connection) -> None:
    from cozy.storage.tables.memory import add_turn_context

    add_turn_context(conn)


def _knowledge(conn: Connection) -> None:
    from cozy.storage.tables.knowledge import create_tables  # tables + FTS5 on SQLite

    create_tables(conn)


def _api_keys(conn: Connection) -> None:
    from cozy.storage.api_keys import api_keys  # imported here: api_keys imports the store

    api_keys.create(conn, checkfirst=True)


def _pg(name: str, conn: Connection) -> None:
    from cozy.storage import pg_schema  # Postgres-only steps (no-ops on SQLite)

    getattr(pg_schema, name)(conn)


MIGRATIONS: list[tuple[str, Step]] = [
    (
        "0001_core_tables",
        _create(schema.users, schema.sessions, schema.messages, schema.audit_events),
    ),
    ("0002_api_keys", _api_keys),
    ("0003_jobs", lambda conn: _lazy_tables("cozy.storage.jobs", conn)),
    ("0003_memory", lambda conn: _lazy_tables("cozy.storage.tables.memory", conn)),
    ("0003_memory_keyword_index", lambda conn: _lazy_step("cozy.storage.tables.memory", conn)),
    ("0003_profile", lambda conn: _lazy_tables("cozy.storage.tables.profile", conn)),
    ("0003_knowledge", _knowledge),
    ("0004_tool_grants", lambda conn: _lazy_tables("cozy.storage.tool_grants", conn)),
    ("0005_session_summaries", lambda conn: _lazy_tables("cozy.storage.summaries", conn)),
    ("0006_pg_knowledge_keyword_index", lambda conn: _pg("knowledge_keyword_index", conn)),
    ("0006_pg_vector_extension", lambda conn: _pg("try_vector_extension", conn)),
    ("0007_pg_tsvector_columns", lambda conn: _pg("tsvector_columns", conn)),
    ("0008_memory_turn_context", _memory_turn_context),
    ("0009_pg_memory_context_tsv", lambda conn: _pg("memory_context_tsv", conn)),
]


def known_names() -> list[str]:
    return [name for name, _ in MIGRATIONS]


def applied(conn: Connection) -> list[str]:
    schema.schema_migrations.create(conn, checkfirst=True)
    rows = conn.execute(
        sa.select(schema.schema_migrations.c.name).order_by(schema.schema_migrations.c.name)
    )
    return [r[0] for r in rows]


def status(conn: Connection) -> dict[str, list[str]]:
    done = set(applied(conn))
    known = known_names()
    return {
        "applied": [n for n in known if n in done],
        "pending": [n for n in known if n not in done],
        "unknown": sorted(done - set(known)),
    }


def check_not_newer(done: list[str]) -> None:
    unknown = sorted(set(done) - set(known_names()))
    if unknown:
        raise StorageError(
            f"the database has migrations this cozy does not know: {', '.join(unknown)}",
            hint="it was written by a newer cozy; upgrade cozy (`./install.sh`) before using it",
        )


async def upgrade(engine: AsyncEngine) -> list[str]:
    """Apply pending steps, each in its own transaction. Returns the names applied."""
    async with engine.begin() as conn:
        done = await conn.run_sync(applied)
    check_not_newer(done)
    ran: list[str] = []
    for name, step in MIGRATIONS:
        if name in done:
            continue
        try:
            async with engine.begin() as conn:
                await conn.run_sync(step)
                await conn.execute(
                    sa.insert(schema.schema_migrations).values(
                        name=name, applied_at=schema.utcnow()
                    )
                )
        except sa.exc.IntegrityError:
            continue  # another process applied the same step first
        ran.append(name)
    return ran
