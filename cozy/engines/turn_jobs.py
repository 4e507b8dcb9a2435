"""What the engines' turn jobs share: reading a saved turn back, checking a payload,
and the store behind a provider engine (memory, mem0, memobase).

A turn job carries the session and answer ids, never text; its handler reads the
turn back from the store with `load_turn`.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from cozy.storage.jobs import job_effects
from cozy.storage.schema import messages, sessions
from cozy.storage.store import Store
from cozy.storage.worker import PermanentJobError


def turn_ids(payload: dict[str, Any]) -> tuple[str, str]:
    """(session_id, answer message id) of a turn job; a bad payload is permanent."""
    session_id, answer_id = payload.get("session_id"), payload.get("message_id")
    if not isinstance(session_id, str) or not isinstance(answer_id, str):
        raise PermanentJobError(f"bad payload {payload!r}: needs session_id and message_id")
    return session_id, answer_id


async def load_turn(
    store: Store, session_id: str, answer_id: str
) -> tuple[str, str, list[Any]] | None:
    """(user_id, personality_id, [user message, answer]) or None if the session is gone.

    Rows carry id, role, content and created_at, oldest first.
    """
    owner = await store.read(
        sa.select(sessions.c.user_id, sessions.c.personality_id).where(sessions.c.id == session_id)
    )
    if not owner:
        return None
    rows = await store.read(
        sa.select(messages.c.id, messages.c.role, messages.c.content, messages.c.created_at)
        .where(messages.c.session_id == session_id, messages.c.id <= answer_id)
        .where(messages.c.role.in_(["user", "assistant"]))
        .order_by(messages.c.id.desc())
        .limit(12)
    )
    turn: list[Any] = []
    for r in rows:  # newest first: the answer, then back to its user message
        if r.role == "user" or r.id == answer_id:
            turn.append(r)
        if r.role == "user":
            break
    turn.reverse()
    return str(owner[0][0]), str(owner[0][1]), turn


async def load_turn_or_fail(
    store: Store, session_id: str, answer_id: str
) -> tuple[str, str, list[Any]]:
    loaded = await load_turn(store, session_id, answer_id)
    if loaded is None:
        raise PermanentJobError(f"session {session_id} no longer exists")
    return loaded


async def effect_done(store: Store, key: str) -> bool:
    """Whether a job already recorded its effect under `key` (see `mark_applied`)."""
    return bool(await store.read(sa.select(job_effects.c.key).where(job_effects.c.key == key)))


class ProviderJobs:
    """Base of a provider engine's job handlers: the store is the runtime's."""

    engine: Any

    @property
    def store(self) -> Store:
        store = self.engine.ctx.store
        assert isinstance(store, Store)
        return store
