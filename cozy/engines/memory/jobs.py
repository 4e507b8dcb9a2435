"""The memory engine's background jobs and its outbox hook.

When a turn's final assistant message is saved, `outbox_hook` queues (in the
same transaction) `memory.turns` (index the raw user + assistant messages: needs
no model) and `memory.extract` (facts through the AI engine). The handlers read
the messages back from the store by id, so a job carries ids, never text.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from cozy.core.types import Message
from cozy.engines.memory.extract import ExtractionFailed
from cozy.engines.memory.parts import MemoryParts
from cozy.engines.memory.types import TurnInput
from cozy.engines.turn_jobs import load_turn_or_fail, turn_ids
from cozy.storage.jobs import Job, enqueue, final_answers
from cozy.storage.schema import sessions
from cozy.storage.worker import PermanentJobError

# built once: the outbox hook runs on every saved turn
_OWNER = sa.select(sessions.c.user_id, sessions.c.personality_id).where(
    sessions.c.id == sa.bindparam("b_sid")
)


async def session_owner(conn: AsyncConnection, session_id: str) -> tuple[str, str] | None:
    row = (await conn.execute(_OWNER, {"b_sid": session_id})).first()
    return (str(row[0]), str(row[1])) if row else None


class MemoryJobs:
    def __init__(self, engine: MemoryParts) -> None:
        self.engine = engine

    async def outbox_hook(
        self, conn: AsyncConnection, session_id: str, rows: list[dict[str, Any]]
    ) -> None:
        answers = final_answers(rows)
        if not answers:
            return
        owner = await session_owner(conn, session_id)
        if owner is None:
            return
        user_id, _personality = owner
        for mid in answers:
            payload = {"session_id": session_id, "message_id": mid}
            await enqueue(conn, "memory.turns", payload, user_id=user_id)
            await enqueue(conn, "memory.extract", payload, user_id=user_id)

    def handlers(self) -> dict[str, Any]:
        return {"memory.turns": self.index_turn, "memory.extract": self.extract}

    async def _load(self, payload: dict[str, Any]) -> tuple[str, str, list[Any]]:
        session_id, answer_id = turn_ids(payload)
        return await load_turn_or_fail(self.engine.repo.store, session_id, answer_id)

    async def index_turn(self, payload: dict[str, Any], job: Job) -> None:
        user_id, personality_id, turn = await self._load(payload)
        await self.engine.index_turns(
            [
                TurnInput(r.id, r.role, r.content, r.created_at)
                for r in turn
                if r.content and (r.role == "user" or self.engine.index_assistant)
            ],
            user_id=user_id,
            session_id=payload["session_id"],
            personality_id=personality_id,
        )

    async def extract(self, payload: dict[str, Any], job: Job) -> None:
        from cozy.engines.memory.reconcile import extract_and_apply

        user_id, personality_id, turn = await self._load(payload)
        if not any(r.role == "user" and r.content.strip() for r in turn):
            return
        try:
            await extract_and_apply(
                self.engine,
                [Message(r.role, r.content) for r in turn],
                user_id=user_id,
                session_id=payload["session_id"],
                personality_id=personality_id,
                source_ids=[r.id for r in turn],
                effect_key=f"memory.extract:{payload['message_id']}",
            )
        except ExtractionFailed as exc:  # retried inside already: give up, nothing written
            raise PermanentJobError(str(exc)) from exc
