"""Saved turns flow into Memobase as durable jobs, flushed on cozy's buffering rules.

- The turn hook queues `memobase.turn` (in the transaction that saved the answer).
- `memobase.turn` inserts the turn as a chat blob, then (re)schedules one debounced
  `memobase.flush` job per user: it runs now once `min_chars` of new text have
  accumulated since the last flush, else after `idle_seconds` of quiet (each new
  turn pushes it back). Flushing makes Memobase extract the profile.
- Effects are keyed by the answer id, written after Memobase accepted the blob: a
  re-run job never inserts a turn twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from cozy.core.types import Message
from cozy.engines.base import EngineContext
from cozy.engines.capabilities import BackgroundJobs, SavedTurn
from cozy.engines.turn_jobs import ProviderJobs, effect_done, load_turn_or_fail, turn_ids
from cozy.storage.jobs import PENDING, Job, enqueue, jobs, mark_applied
from cozy.storage.worker import PermanentJobError


class MemobaseParts(Protocol):
    """What the jobs use of the Memobase engine (profile/memobase_provider.py)."""

    ctx: EngineContext
    min_chars: int
    idle_seconds: float

    async def insert_turn(
        self, user_id: str, messages: Sequence[Message], *, source_ids: Sequence[str] = ()
    ) -> str | None: ...

    async def flush(self, user_id: str) -> None: ...


TURN, FLUSH = "memobase.turn", "memobase.flush"


class MemobaseJobs(ProviderJobs, BackgroundJobs):
    def __init__(self, engine: MemobaseParts) -> None:
        self.engine = engine

    async def in_transaction(self, conn: AsyncConnection, saved: SavedTurn) -> None:
        payload = {"session_id": saved.session_id, "message_id": saved.message_ids[1]}
        await enqueue(conn, TURN, payload)

    def handlers(self) -> dict[str, Any]:
        return {TURN: self.turn, FLUSH: self.flush}

    async def turn(self, payload: dict[str, Any], job: Job | None) -> None:
        session_id, answer_id = turn_ids(payload)
        key = f"{TURN}:{answer_id}"
        if await effect_done(self.store, key):
            return
        user_id, _personality, rows = await load_turn_or_fail(self.store, session_id, answer_id)
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

        await self.store.write(record)

    async def flush(self, payload: dict[str, Any], job: Job | None) -> None:
        user_id = payload.get("user_id")
        if not isinstance(user_id, str):
            raise PermanentJobError(f"bad payload {payload!r}: needs user_id")
        await self.engine.flush(user_id)
