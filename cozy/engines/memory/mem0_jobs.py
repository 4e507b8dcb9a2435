"""Saved turns flow into mem0 as durable jobs.

When a turn's final assistant message is saved, the turn hook queues (in the same
transaction) one `mem0.add` job carrying the session and answer ids; the handler
reads the turn back from the store and hands it to mem0. The effect key is written
only after mem0 accepted the turn, so a crash re-runs the job (at least once) and a
finished job is never applied twice.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from cozy.core.types import Message
from cozy.engines.base import MemoryEngine
from cozy.engines.capabilities import BackgroundJobs, SavedTurn
from cozy.engines.turn_jobs import ProviderJobs, effect_done, load_turn_or_fail, turn_ids
from cozy.storage.jobs import Job, enqueue, mark_applied

JOB_KIND = "mem0.add"


class Mem0Jobs(ProviderJobs, BackgroundJobs):
    def __init__(self, engine: MemoryEngine) -> None:
        self.engine = engine

    async def in_transaction(self, conn: AsyncConnection, saved: SavedTurn) -> None:
        payload = {"session_id": saved.session_id, "message_id": saved.message_ids[1]}
        await enqueue(conn, JOB_KIND, payload, user_id=saved.user_id)

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
