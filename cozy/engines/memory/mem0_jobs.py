"""Saved turns flow into mem0 as durable jobs.

When a turn's final assistant message is saved, the outbox hook queues (in the same
transaction) one `mem0.add` job carrying the session and answer ids; the handler
reads the turn back from the store and hands it to mem0. The effect key is written
only after mem0 accepted the turn, so a crash re-runs the job (at least once) and a
finished job is never applied twice.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from cozy.core.types import Message
from cozy.engines.base import MemoryEngine
from cozy.engines.turn_jobs import ProviderJobs, effect_done, load_turn_or_fail, turn_ids
from cozy.storage.jobs import Job, enqueue, final_answers, mark_applied
from cozy.storage.schema import sessions

JOB_KIND = "mem0.add"


class Mem0Jobs(ProviderJobs):
    def __init__(self, engine: MemoryEngine) -> None:
        self.engine = engine

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
        session_id, answer_id = turn_ids(payload)
        key = f"{JOB_KIND}:{answer_id}"
        if await effect_done(self.store, key):
            return
        user_id, personality_id, turn = await load_turn_or_fail(self.store, session_id, answer_id)
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

        await self.store.write(mark)
