"""The memory engine's background jobs and its turn hook.

When a turn's final assistant message is saved, `in_transaction` queues (in the
same transaction) `memory.turns` (index the raw user + assistant messages: needs
no model) and `memory.extract` (facts through the AI engine), or adds the turn to
the session's job of that kind still pending. The handlers read the messages back
from the store by id, so a job carries ids, never text.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from cozy.core.types import Message
from cozy.engines.capabilities import BackgroundJobs, SavedTurn
from cozy.engines.memory.extract import ExtractionFailed
from cozy.engines.memory.parts import MemoryParts
from cozy.engines.memory.types import TurnInput
from cozy.engines.turn_jobs import load_turn_or_fail, turn_ids
from cozy.storage.jobs import Job, backlog, enqueue
from cozy.storage.worker import PermanentJobError

log = logging.getLogger("cozy.jobs")

MAX_COALESCED = 8  # turns one pending job may cover (one extraction prompt stays small)


def _ids(payload: dict[str, Any]) -> list[str]:
    """The answer ids a memory job covers: `message_ids` (coalesced) or `message_id`."""
    ids = payload.get("message_ids")
    if ids is None:
        ids = [payload.get("message_id")]
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise PermanentJobError(f"bad payload {payload!r}: needs session_id and message_ids")
    return ids


def _held(payload: dict[str, Any]) -> list[str]:
    ids = payload.get("message_ids")
    if isinstance(ids, list):
        return ids
    return [payload["message_id"]] if "message_id" in payload else []


def _room(old: dict[str, Any]) -> bool:
    """coalesce(): a session's pending job takes one more turn while it has room."""
    return len(_held(old)) < MAX_COALESCED


def _coalesce(session_id: str, mid: str) -> Any:
    """merge(): this turn joins the session's pending job."""

    def merge(old: dict[str, Any]) -> dict[str, Any]:
        return {"session_id": session_id, "message_ids": [*_held(old), mid]}

    return merge


class MemoryJobs(BackgroundJobs):
    def __init__(self, engine: MemoryParts) -> None:
        self.engine = engine

    async def in_transaction(self, conn: AsyncConnection, saved: SavedTurn) -> None:
        """One pending job per session and kind: turns saved while it waits join it
        (so a busy worker runs one extraction over several turns, not one per turn).
        Over the backlog limit nothing is queued: logged, and counted in /metrics."""
        limit = self.engine.backlog_limit
        if limit and backlog.estimate() >= limit:
            for kind in ("memory.turns", "memory.extract"):
                backlog.drop(kind, limit, log)
            return
        sid, mid = saved.session_id, saved.message_ids[1]
        for kind in ("memory.turns", "memory.extract"):
            await enqueue(
                conn,
                kind,
                {"session_id": sid, "message_ids": [mid]},
                user_id=saved.user_id,
                key=f"{kind}:{sid}",
                merge=_coalesce(sid, mid),
                coalesce=_room,
            )

    def handlers(self) -> dict[str, Any]:
        return {"memory.turns": self.index_turn, "memory.extract": self.extract}

    async def _load(self, payload: dict[str, Any]) -> tuple[str, str, list[Any]]:
        """(user, personality, the rows of every turn the job covers, oldest first)."""
        session_id = payload.get("session_id")
        if not isinstance(session_id, str):
            raise PermanentJobError(f"bad payload {payload!r}: needs session_id")
        rows: list[Any] = []
        user_id = personality_id = ""
        for mid in _ids(payload):
            turn_ids({"session_id": session_id, "message_id": mid})
            user_id, personality_id, turn = await load_turn_or_fail(
                self.engine.repo.store, session_id, mid
            )
            rows.extend(r for r in turn if all(r.id != seen.id for seen in rows))
        return user_id, personality_id, rows

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
                effect_key=f"memory.extract:{_ids(payload)[-1]}",
            )
        except ExtractionFailed as exc:  # retried inside already: give up, nothing written
            raise PermanentJobError(str(exc)) from exc
