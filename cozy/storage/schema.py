"""Tables, as SQLAlchemy Core metadata. The same schema runs on SQLite and Postgres.

Other modules (memory, profile, knowledge, jobs) add their own tables to
`metadata` and their own named migrations in `migrations.py`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

metadata = sa.MetaData()


class JSONType(TypeDecorator[Any]):
    """JSON, and JSONB on Postgres. The Postgres type is imported when a Postgres
    dialect first asks for it: importing the Postgres dialect was ~40 ms of the
    start-up of every command on SQLite (`python -X importtime`)."""

    impl = sa.JSON
    cache_ok = True
    should_evaluate_none = True  # as sa.JSON: Python None is stored as JSON null

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(sa.JSON())


def utcnow() -> float:
    return time.time()


_lock = threading.Lock()
_last = [0, 0]


def new_id(prefix: str) -> str:
    """Time-sortable id: ms timestamp + per-process counter + randomness.

    Never sorts before this process's previous id, even if the wall clock steps back
    (NTP): messages are ordered by id."""
    with _lock:
        ms = max(int(time.time() * 1000), _last[0])
        if ms == _last[0]:
            _last[1] += 1
        else:
            _last[0], _last[1] = ms, 0
        counter = _last[1]
    return f"{prefix}_{ms:012x}{counter:04x}{os.urandom(4).hex()}"


users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=True),
    sa.Column("role", sa.String(16), nullable=False, server_default="user"),
    sa.Column("status", sa.String(16), nullable=False, server_default="active"),
    sa.Column("created_at", sa.Float, nullable=False),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(64), sa.ForeignKey("users.id"), nullable=False),
    sa.Column("personality_id", sa.String(64), nullable=False),
    sa.Column("title", sa.String(300), nullable=True),
    sa.Column("model", sa.String(200), nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("deleted_at", sa.Float, nullable=True),
    sa.Column("metadata", JSONType, nullable=True),
    sa.Index("ix_sessions_user_updated", "user_id", "updated_at"),
)

messages = sa.Table(
    "messages",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("session_id", sa.String(64), sa.ForeignKey("sessions.id"), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("content", sa.Text, nullable=False, server_default=""),
    sa.Column("tool_calls", JSONType, nullable=True),
    sa.Column("tool_call_id", sa.String(128), nullable=True),
    sa.Column("name", sa.String(200), nullable=True),
    sa.Column("status", sa.String(16), nullable=False, server_default="complete"),
    sa.Column("metadata", JSONType, nullable=True),
    sa.Column("prompt_tokens", sa.Integer, nullable=True),
    sa.Column("completion_tokens", sa.Integer, nullable=True),
    sa.Column("latency_ms", sa.Float, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_messages_session_id", "session_id", "id"),
)

audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("user_id", sa.String(64), nullable=True),
    sa.Column("session_id", sa.String(64), nullable=True),
    sa.Column("personality_id", sa.String(64), nullable=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("tool", sa.String(200), nullable=True),
    sa.Column("level", sa.String(16), nullable=True),
    sa.Column("decision", sa.String(16), nullable=True),
    sa.Column("args_digest", sa.String(128), nullable=True),
    sa.Column("status", sa.String(16), nullable=True),
    sa.Column("duration_ms", sa.Float, nullable=True),
    sa.Column("output_size", sa.Integer, nullable=True),
    sa.Column("detail", JSONType, nullable=True),
    sa.Index("ix_audit_user_time", "user_id", "created_at"),
)

schema_migrations = sa.Table(
    "schema_migrations",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("applied_at", sa.Float, nullable=False),
)


def create_all(conn: Connection, tables: Sequence[sa.Table]) -> None:
    """Create these tables unless they exist (the body of a migration step)."""
    for table in tables:
        table.create(conn, checkfirst=True)


CORE_TABLES = (users, sessions, messages, audit_events)  # migration step 0001
