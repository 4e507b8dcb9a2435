"""Saved turns flow into mem0 as durable jobs.

When a turn's final assistant message is saved, the outbox hook queues (in the same
transaction) one `mem0.add` job carrying the session and answer ids; the handler
reads the turn back from the store and hands it to mem0. The effect key is written
only after mem0 accepted the turn, so a crash re-runs the job (at least once) and a
finished job is never applied twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from cozy.core.types import Message
from cozy.storage.jobs import Job, enqueue, final_answers, job_effects, mark_applied
from cozy.storage.schema import messages, sessions
from cozy.storage.store import Store
from cozy.storage.worker import PermanentJobError

if TYPE_CHECKING:
    from cozy.engines.memory.mem0_provider import Mem0Memory

JOB_KIND = "mem0.add"


async def load_turn(
    store: Store, session_id: str, answer_id: str
) -> tuple[str, str, list[Any]] | None:
    """(user_id, personality_id, [user messages…, answer]) or None if the session is gone."""
    owner = await store._read(
        sa.select(sessions.c.user_id, sessions.c.personality_id).where(sessions.c.id == session_id)
    )
    if not owner:
        return None
    rows = await store._read(
        sa.select(messages.c.id, messages.c.role, messages.c.content)
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


class Mem0Jobs:
    def __init__(self, engine: Mem0Memory) -> None:
        self.engine = engine

    @property
    def store(self) -> Store:
        store = getattr(self.engine.runtime, "store", None)
        assert isinstance(store, Store)
        return store

    async def outbox_hook(
        self, conn: AsyncConnection, session_id: str, rows: list[dict[str, Any]]
    ) -> None:
        for mid in final_answers(rows):
            owner = (
                await conn.execute(sa.select(sessions.c.user_id).where(sessions.c.id == session_id))
            ).first()
            payload = {"session_id": session_id, "message_id": mid}
            await enqueue(conn, JOB_KIND, payload, user_id=owner[0] if owner else None)

    def handlers(self) -> dict[str, Any]:
        return {JOB_KIND: self.add_turn}

    async def add_turn(self, payload: dict[str, Any], job: Job) -> None:
        session_id, answer_id = payload.get("session_id"), payload.get("message_id")
        if not isinstance(session_id, str) or not isinstance(answer_id, str):
            raise PermanentJobError(f"bad payload {payload!r}: needs session_id and message_id")
        key = f"{JOB_KIND}:{answer_id}"
        done = await self.store._read(sa.select(job_effects.c.key).where(job_effects.c.key == key))
        if done:
            return
        loaded = await load_turn(self.store, session_id, answer_id)
        if loaded is None:
            raise PermanentJobError(f"session {session_id} no longer exists")
        user_id, personality_id, turn = loaded
        if not any(r.role == "user" and r.content.strip() for r in turn):
            return
        await self.engine.add_memory(
            [Message(r.role, r.content) for r in turn],
            user_id=user_id,
            session_id=session_id,
            personality_id=personality_id,
            source_ids=[r.id for r in turn],
        )

        async def mark(conn: AsyncConnection) -> None:
            await mark_applied(conn, key)

        await self.store._write(mark)
