"""Tables of the local memory engine, and the keyword index DDL (FTS5 / tsvector).

`memories` holds both extracted facts (`kind='fact'`) and raw conversation turns
(`kind='turn'`). A turn's `context` holds its neighbouring turns in the session;
the keyword index covers it at a lower weight (an answer often sits next to the
turn that names the topic). Nothing is deleted: `status` is active / obsolete / deleted and
every change leaves a row in `memory_history`.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cozy.storage.schema import JSONType, metadata

memories = sa.Table(
    "memories",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # fact | turn
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("context", sa.Text, nullable=True),  # neighbouring turns (keyword index only)
    sa.Column("text_hash", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="active"),
    sa.Column("personality_id", sa.String(64), nullable=True),
    sa.Column("session_id", sa.String(64), nullable=True),
    sa.Column("source_message_ids", JSONType, nullable=True),
    sa.Column("occurred_at", sa.Float, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("deleted_at", sa.Float, nullable=True),
    sa.Column("embedding", sa.LargeBinary, nullable=True),  # float32, unit length
    sa.Column("embed_model", sa.String(200), nullable=True),
    sa.Column("metadata", JSONType, nullable=True),
    sa.Index("ix_memories_user_status", "user_id", "status", "kind"),
    sa.Index("ix_memories_user_hash", "user_id", "text_hash"),
    sa.Index("ix_memories_session", "session_id", "id"),  # a session's turns in order
)

memory_history = sa.Table(
    "memory_history",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("memory_id", sa.String(64), nullable=False),
    sa.Column("user_id", sa.String(64), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("old_text", sa.Text, nullable=True),
    sa.Column("new_text", sa.Text, nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("source_message_ids", JSONType, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_memory_history_memory", "memory_id", "created_at"),
)

# One row per user, bumped in every write transaction: a process keeps its vector
# matrix in memory and reloads it only when the version moved.
memory_versions = sa.Table(
    "memory_versions",
    metadata,
    sa.Column("user_id", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
)

TABLES = (memories, memory_history, memory_versions)  # a migration step (migrations.py)


_FTS_TRIGGERS = ("memories_fts_ai", "memories_fts_ad", "memories_fts_au")
_FTS_DDL = [
    "CREATE VIRTUAL TABLE IF NOT EXISTS memories_fts USING fts5("
    "text, context, content='memories', content_rowid='rowid', tokenize='porter unicode61')",
    "CREATE TRIGGER IF NOT EXISTS memories_fts_ai AFTER INSERT ON memories BEGIN "
    "INSERT INTO memories_fts(rowid, text, context) VALUES (new.rowid, new.text, new.context); "
    "END",
    "CREATE TRIGGER IF NOT EXISTS memories_fts_ad AFTER DELETE ON memories BEGIN "
    "INSERT INTO memories_fts(memories_fts, rowid, text, context) "
    "VALUES ('delete', old.rowid, old.text, old.context); END",
    "CREATE TRIGGER IF NOT EXISTS memories_fts_au AFTER UPDATE OF text, context ON memories "
    "BEGIN INSERT INTO memories_fts(memories_fts, rowid, text, context) "
    "VALUES ('delete', old.rowid, old.text, old.context); "
    "INSERT INTO memories_fts(rowid, text, context) VALUES (new.rowid, new.text, new.context); "
    "END",
]

_PG_DDL = [
    "CREATE INDEX IF NOT EXISTS ix_memories_tsv ON memories "
    "USING GIN (to_tsvector('english', text))",
]


def create_keyword_index(conn: Connection) -> None:
    """Migration step: the keyword index for the dialect in use."""
    ddl = _FTS_DDL if conn.dialect.name == "sqlite" else _PG_DDL
    for stmt in ddl:
        conn.exec_driver_sql(stmt)


def add_turn_context(conn: Connection) -> None:
    """Migration step: the `context` column (on SQLite in the FTS5 index), and an index
    on (session_id, id) for a session's turns in order.

    Databases made before this step have a one-column FTS table: it is dropped and
    rebuilt from `memories` (FTS5 external content), in the step's transaction.
    """
    if "context" not in {c["name"] for c in sa.inspect(conn).get_columns("memories")}:
        conn.exec_driver_sql("ALTER TABLE memories ADD COLUMN context TEXT")
    conn.exec_driver_sql(
        "CREATE INDEX IF NOT EXISTS ix_memories_session ON memories (session_id, id)"
    )
    if conn.dialect.name != "sqlite":
        return  # Postgres ranks `text` through its stored tsvector (pg_schema)
    cols = {r[1] for r in conn.exec_driver_sql("PRAGMA table_info(memories_fts)")}
    if "context" in cols:
        return
    for name in _FTS_TRIGGERS:
        conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
    conn.exec_driver_sql("DROP TABLE IF EXISTS memories_fts")
    for stmt in _FTS_DDL:
        conn.exec_driver_sql(stmt)
    conn.exec_driver_sql("INSERT INTO memories_fts(memories_fts) VALUES ('rebuild')")
