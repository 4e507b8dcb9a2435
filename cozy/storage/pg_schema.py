"""Postgres-only migration steps and deployment facts (no-ops on SQLite).

- the knowledge keyword index: a GIN index over the same weighted tsvector
  expression the knowledge engine's Postgres keyword queries use (heading weight A, text B);
- pgvector: `CREATE EXTENSION vector` is tried once at migrate time inside a
  savepoint; where it fails (not installed, not allowed) nothing else changes.
  Vector search is the portable path either way (no pgvector search is implemented);
  `vector_path()` says so, and what pgvector's state is (`cozy doctor`,
  `cozy migrate status`).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError


def knowledge_tsv(alias: str = "") -> str:
    """The weighted tsvector of a chunk: the index and the queries use this ONE text."""
    p = f"{alias}." if alias else ""
    return (
        f"(setweight(to_tsvector('english'::regconfig, {p}heading), 'A') || "
        f"setweight(to_tsvector('english'::regconfig, {p}text), 'B'))"
    )


KNOWLEDGE_TSV = knowledge_tsv()
MEMORY_TSV = "to_tsvector('english'::regconfig, text)"  # step 0007 (before `context`)
# step 0009: the memory's own text at weight A, its neighbouring turns at weight B (the
# SQLite FTS5 index has the same two columns); the query weighs B by `context_weight`
MEMORY_CONTEXT_TSV = (
    "(setweight(to_tsvector('english'::regconfig, text), 'A') || "
    "setweight(to_tsvector('english'::regconfig, coalesce(context, '')), 'B'))"
)

PORTABLE = (
    "embeddings in a bytea column of their rows, cosine similarity computed in the instance "
    "over the caller's scope (a per-scope in-process index, re-read when the scope's version "
    "moves: Redis change tokens, the DB counter without Redis)"
)


def knowledge_keyword_index(conn: Connection) -> None:
    """Migration step: GIN index for knowledge keyword search on Postgres."""
    if conn.dialect.name != "postgresql":
        return
    conn.exec_driver_sql(
        f"CREATE INDEX IF NOT EXISTS ix_knowledge_chunks_tsv ON knowledge_chunks "
        f"USING GIN ({KNOWLEDGE_TSV})"
    )


def tsvector_columns(conn: Connection) -> None:
    """Migration step: stored tsvector columns (+ GIN) for memories and knowledge chunks.

    Ranking (`ts_rank`) over an expression index re-parses every matching row's
    text; a stored generated column is parsed once, at write time. The earlier
    expression indexes are dropped (nothing queries them any more).
    """
    if conn.dialect.name != "postgresql":
        return
    inspector = sa.inspect(conn)
    for table, expr in (("memories", MEMORY_TSV), ("knowledge_chunks", KNOWLEDGE_TSV)):
        if "tsv" not in {c["name"] for c in inspector.get_columns(table)}:
            conn.exec_driver_sql(
                f"ALTER TABLE {table} ADD COLUMN tsv tsvector GENERATED ALWAYS AS ({expr}) STORED"
            )
        conn.exec_driver_sql(
            f"CREATE INDEX IF NOT EXISTS ix_{table}_tsvcol ON {table} USING GIN (tsv)"
        )
    conn.exec_driver_sql("DROP INDEX IF EXISTS ix_knowledge_chunks_tsv")
    conn.exec_driver_sql("DROP INDEX IF EXISTS ix_memories_tsv")


def memory_context_tsv(conn: Connection) -> None:
    """Migration step: the memories' stored tsvector also covers `context` (weight B).

    Postgres 15 cannot change a generated column's expression, so the column is
    dropped and added again (derived data only: recomputed from `text` and `context`
    in the step's transaction; the table is rewritten once). Embeddings are stored
    EXTERNAL (random floats do not compress: no attempt at every write; the toaster
    moves them out of a big row before anything else, so `tsv` stays in the row that
    keyword ranking reads).
    """
    if conn.dialect.name != "postgresql":
        return
    for table in ("memories", "knowledge_chunks"):
        conn.exec_driver_sql(f"ALTER TABLE {table} ALTER COLUMN embedding SET STORAGE EXTERNAL")
    conn.exec_driver_sql("DROP INDEX IF EXISTS ix_memories_tsvcol")
    if "tsv" in {c["name"] for c in sa.inspect(conn).get_columns("memories")}:
        conn.exec_driver_sql("ALTER TABLE memories DROP COLUMN tsv")
    conn.exec_driver_sql(
        f"ALTER TABLE memories ADD COLUMN tsv tsvector "
        f"GENERATED ALWAYS AS ({MEMORY_CONTEXT_TSV}) STORED"
    )
    conn.exec_driver_sql("CREATE INDEX ix_memories_tsvcol ON memories USING GIN (tsv)")
    conn.exec_driver_sql("ANALYZE memories")  # tsvector statistics: the planner's estimates


def try_vector_extension(conn: Connection) -> None:
    """Migration step: enable pgvector where the server has it; never fails the migration."""
    if conn.dialect.name != "postgresql":
        return
    savepoint = conn.begin_nested()
    try:
        conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS vector")
    except DBAPIError:
        savepoint.rollback()
    else:
        savepoint.commit()


def vector_path(conn: Connection) -> dict[str, Any]:
    """Which vector search path this database gets, and why (`cozy doctor`, `migrate status`).

    cozy has one vector search path on Postgres, the portable one: a pgvector (HNSW)
    path is not implemented, so an enabled extension is reported but not used.
    """
    if conn.dialect.name != "postgresql":
        return {"path": "local", "pgvector": "n/a", "detail": "SQLite: vectors in the rows, "
                "cosine in-process (per-user index)"}  # fmt: skip
    found = conn.exec_driver_sql("SELECT 1 FROM pg_extension WHERE extname = 'vector'").first()
    available = conn.exec_driver_sql(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"
    ).first()
    if found is not None:
        state, why = "enabled", "enabled, but cozy has no pgvector search: not used"
    elif available is not None:
        state, why = (
            "available",
            "installed on the server but not enabled (CREATE EXTENSION failed)",
        )
    else:
        state, why = "absent", "not installed on this server"
    return {"path": "portable", "pgvector": state, "detail": f"{PORTABLE}; pgvector {why}"}
