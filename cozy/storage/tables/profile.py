"""Tables of the local profile engine: slots, their history, the extraction cursor."""

from __future__ import annotations

import sqlalchemy as sa

from cozy.storage.schema import JSONType, metadata

profile_slots = sa.Table(
    "profile_slots",
    metadata,
    sa.Column("user_id", sa.String(64), primary_key=True),
    sa.Column("topic", sa.String(64), primary_key=True),
    sa.Column("slot", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("confidence", sa.Float, nullable=False, server_default="1.0"),
    sa.Column("source_message_ids", JSONType, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("deleted_at", sa.Float, nullable=True),
)

profile_history = sa.Table(
    "profile_history",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(64), nullable=False),
    sa.Column("topic", sa.String(64), nullable=False),
    sa.Column("slot", sa.String(64), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),  # add | update | remove | restore
    sa.Column("old_value", sa.Text, nullable=True),
    sa.Column("new_value", sa.Text, nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("source_message_ids", JSONType, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_profile_history_user", "user_id", "created_at"),
)

# How far the buffered extraction has read each user's messages.
profile_cursors = sa.Table(
    "profile_cursors",
    metadata,
    sa.Column("user_id", sa.String(64), primary_key=True),
    sa.Column("last_message_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

TABLES = (profile_slots, profile_history, profile_cursors)  # a migration step (migrations.py)
