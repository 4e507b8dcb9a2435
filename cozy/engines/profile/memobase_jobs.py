"""Saved turns flow into Memobase as durable jobs, flushed on cozy's buffering rules.

- The outbox hook queues `memobase.turn` (in the transaction that saved the answer).
- `memobase.turn` inserts the turn as a chat blob, then (re)schedules one debounced
  `memobase.flush` job per user: it runs now once `min_chars` of new text have
  accumulated since the last flush, else after `idle_seconds` of quiet (each new
  turn pushes it back). Flushing makes Memobase extract the profile.
- Effects are keyed by the answer id, written after Memobase accepted the blob: a
  re-run job never inserts a turn twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from cozy.core.types import Message
from cozy.storage.jobs import (
    PENDING,
    Job,
    enqueue,
    final_answers,
    job_effects,
    jobs,
    mark_applied,
)
from cozy.storage.schema import messages, sessions
from cozy.storage.store import Store
from cozy.storage.worker import PermanentJobError

if TYPE_CHECKING:
    from cozy.engines.profile.memobase_provider import MemobaseProfile

TURN, FLUSH = "memobase.turn", "memobase.flush"


class MemobaseJobs:
    def __init__(self, engine: MemobaseProfile) -> None:
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
            await enqueue(conn, TURN, {"session_id": session_id, "message_id": mid})

    def handlers(self) -> dict[str, Any]:
        return {TURN: self.turn, FLUSH: self.flush}

    async def _turn_rows(self, session_id: str, answer_id: str) -> tuple[str, list[Any]]:
        owner = await self.store._read(
            sa.select(sessions.c.user_id).where(sessions.c.id == session_id)
        )
        if not owner:
            raise PermanentJobError(f"session {session_id} no longer exists")
        rows = await self.store._read(
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
        return str(owner[0][0]), turn

    async def turn(self, payload: dict[str, Any], job: Job | None) -> None:
        session_id, answer_id = payload.get("session_id"), payload.get("message_id")
        if not isinstance(session_id, str) or not isinstance(answer_id, str):
            raise PermanentJobError(f"bad payload {payload!r}: needs session_id and message_id")
        key = f"{TURN}:{answer_id}"
        if await self.store._read(sa.select(job_effects.c.key).where(job_effects.c.key == key)):
            return
        user_id, rows = await self._turn_rows(session_id, answer_id)
        turn = [Message(r.role, r.content) for r in rows]
        await self.engine.insert_turn(user_id, turn, source_ids=[r.id for r in rows])
        chars = sum(len(m.content) for m in turn if m.role == "user")
        eng = self.engine

        async def record(conn: AsyncConnection) -> None:
            if not await mark_applied(conn, key):
                return
            flush_key = f"{FLUSH}:{user_id}"
            row = (
                await conn.execute(
                    sa.select(jobs.c.payload).where(
                        jobs.c.key == flush_key, jobs.c.status == PENDING
                    )
                )
            ).first()
            total = int((row.payload or {}).get("chars", 0) if row else 0) + chars
            new = {"user_id": user_id, "chars": total}
            await enqueue(
                conn,
                FLUSH,
                new,
                user_id=user_id,
                key=flush_key,
                delay=0.0 if total >= eng.min_chars else eng.idle_seconds,
                merge=lambda _old: new,
            )

        await self.store._write(record)

    async def flush(self, payload: dict[str, Any], job: Job | None) -> None:
        user_id = payload.get("user_id")
        if not isinstance(user_id, str):
            raise PermanentJobError(f"bad payload {payload!r}: needs user_id")
        await self.engine.flush(user_id)
