"""Schema migrations as named steps recorded in `schema_migrations`.

Every step is a named function of the module that owns its tables, listed here in
order, so any cozy process knows the full set and can refuse a database that carries
a step it does not know (a newer cozy wrote it). Each step runs in its own
transaction with its record, so a failed step is rolled back whole (Postgres has
transactional DDL; on SQLite the step's DDL is written so a rerun is safe). A step
that adds a column to an existing table must check the inspector first, because
step 1 creates tables from the current schema on an empty database.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from cozy.core.errors import StorageError
from cozy.storage import schema

Step = Callable[[Connection], None]


def owned(ref: str) -> Step:
    """The step `module:name`, imported only when the step runs (a fresh process need not
    import every table): a named function of the module that owns the tables, or its
    table (or tuple of tables) to create unless it exists."""
    module, _, name = ref.partition(":")

    def step(conn: Connection) -> None:
        owner = getattr(importlib.import_module(module), name)
        if isinstance(owner, sa.Table):
            owner.create(conn, checkfirst=True)
        elif isinstance(owner, tuple):
            schema.create_all(conn, owner)
        else:
            owner(conn)

    step.__qualname__ = ref
    return step


# The order is the database's history: append, never reorder or rename.
MIGRATIONS: list[tuple[str, Step]] = [
    ("0001_core_tables", owned("cozy.storage.schema:CORE_TABLES")),
    ("0002_api_keys", owned("cozy.storage.api_keys:api_keys")),
    ("0003_jobs", owned("cozy.storage.jobs:TABLES")),
    ("0003_memory", owned("cozy.storage.tables.memory:TABLES")),
    ("0003_memory_keyword_index", owned("cozy.storage.tables.memory:create_keyword_index")),
    ("0003_profile", owned("cozy.storage.tables.profile:TABLES")),
    ("0003_knowledge", owned("cozy.storage.tables.knowledge:create_tables")),
    ("0004_tool_grants", owned("cozy.storage.tool_grants:tool_grants")),
    ("0005_session_summaries", owned("cozy.storage.summaries:session_summaries")),
    ("0006_pg_knowledge_keyword_index", owned("cozy.storage.pg_schema:knowledge_keyword_index")),
    ("0006_pg_vector_extension", owned("cozy.storage.pg_schema:try_vector_extension")),
    ("0007_pg_tsvector_columns", owned("cozy.storage.pg_schema:tsvector_columns")),
    ("0008_memory_turn_context", owned("cozy.storage.tables.memory:add_turn_context")),
    ("0009_pg_memory_context_tsv", owned("cozy.storage.pg_schema:memory_context_tsv")),
    ("0010_fragments", owned("cozy.storage.attach:fragments")),
    ("0011_message_fragments", owned("cozy.storage.attach:message_fragments")),
    ("0012_fragments_out_of_messages", owned("cozy.storage.attach:move_inline_text")),
    ("0013_user_budgets", owned("cozy.storage.users:user_budgets")),
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
