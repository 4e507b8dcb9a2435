"""Knowledge tables: documents, chunks (text + vector), a per-user generation counter.

The tables join the shared `schema.metadata`; the migration step `create_tables`
creates them plus, on SQLite, the FTS5 index over chunk headings and text, kept in
sync by triggers (external-content FTS5, so the text is stored once). On Postgres
the plain tables are created; a tsvector index comes with the Postgres issue.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cozy.storage.schema import JSONType, create_all, metadata

documents = sa.Table(
    "knowledge_documents",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(64), nullable=False),
    sa.Column("collection", sa.String(200), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("title", sa.String(500), nullable=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("mtime", sa.Float, nullable=True),
    sa.Column("chunk_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("metadata", JSONType, nullable=True),
    sa.UniqueConstraint("user_id", "collection", "path", name="uq_knowledge_doc_path"),
    sa.Index("ix_knowledge_docs_hash", "user_id", "content_hash"),
)

chunks = sa.Table(
    "knowledge_chunks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("document_id", sa.String(64), nullable=False),
    sa.Column("user_id", sa.String(64), nullable=False),
    sa.Column("collection", sa.String(200), nullable=False),
    sa.Column("ord", sa.Integer, nullable=False),
    sa.Column("heading", sa.Text, nullable=False, server_default=""),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("line_start", sa.Integer, nullable=True),
    sa.Column("line_end", sa.Integer, nullable=True),
    sa.Column("page", sa.Integer, nullable=True),
    sa.Column("symbol", sa.String(300), nullable=True),
    sa.Column("tokens", sa.Integer, nullable=False, server_default="0"),
    sa.Column("text_hash", sa.String(40), nullable=False),
    sa.Column("embedding", sa.LargeBinary, nullable=True),
    sa.Column("embed_model", sa.String(200), nullable=True),
    sa.Index("ix_knowledge_chunks_doc", "document_id", "ord"),
    sa.Index("ix_knowledge_chunks_user", "user_id", "collection"),
    sqlite_autoincrement=True,
)

state = sa.Table(
    "knowledge_state",
    metadata,
    sa.Column("user_id", sa.String(64), primary_key=True),
    sa.Column("generation", sa.Integer, nullable=False, server_default="0"),
    sa.Column("updated_at", sa.Float, nullable=False),
)

FTS_DDL = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS knowledge_fts USING fts5("
    "heading, text, content='knowledge_chunks', content_rowid='id', "
    "tokenize='porter unicode61 remove_diacritics 2')",
    "CREATE TRIGGER IF NOT EXISTS knowledge_chunks_ai AFTER INSERT ON knowledge_chunks BEGIN "
    "INSERT INTO knowledge_fts(rowid, heading, text) VALUES (new.id, new.heading, new.text); END",
    "CREATE TRIGGER IF NOT EXISTS knowledge_chunks_ad AFTER DELETE ON knowledge_chunks BEGIN "
    "INSERT INTO knowledge_fts(knowledge_fts, rowid, heading, text) "
    "VALUES ('delete', old.id, old.heading, old.text); END",
    "CREATE TRIGGER IF NOT EXISTS knowledge_chunks_au AFTER UPDATE OF heading, text "
    "ON knowledge_chunks BEGIN "
    "INSERT INTO knowledge_fts(knowledge_fts, rowid, heading, text) "
    "VALUES ('delete', old.id, old.heading, old.text); "
    "INSERT INTO knowledge_fts(rowid, heading, text) VALUES (new.id, new.heading, new.text); END",
)


def create_tables(conn: Connection) -> None:
    """Migration step: the knowledge tables, plus FTS5 and its triggers on SQLite."""
    create_all(conn, (documents, chunks, state))
    if conn.dialect.name == "sqlite":
        for ddl in FTS_DDL:
            conn.exec_driver_sql(ddl)
