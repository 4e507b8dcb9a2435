"""The buffered profile update: one pending job per user, debounced.

Each saved turn adds its user text length to the user's pending `profile.update`
job (same transaction as the messages). The job is due once `min_chars` of new
user text has accumulated, or after `idle_seconds` without a new turn. It reads
every user message after the user's cursor and moves the cursor in the same
transaction as the slot writes, so a re-run never applies the same text twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from cozy.engines.capabilities import BackgroundJobs, SavedTurn
from cozy.storage.jobs import Job, enqueue
from cozy.storage.schema import messages, sessions
from cozy.storage.store import Store
from cozy.storage.worker import PermanentJobError


class ProfileParts(Protocol):
    """What the job uses of the profile engine (profile/local.py)."""

    store: Store
    min_chars: int
    idle_seconds: float

    async def cursor(self, user_id: str) -> float: ...

    async def extract_and_merge(
        self, user_id: str, text: str, *, source_ids: Sequence[str], cursor: float | None
    ) -> int: ...


MAX_TEXT = 12000


# The length of the session's latest user message (built once: the hook runs on every
# saved turn; a turn that carried a client's tool results has none of its own).
_LAST_USER_LENGTH = (
    sa.select(sa.func.length(messages.c.content))
    .where(messages.c.session_id == sa.bindparam("b_sid"), messages.c.role == "user")
    .order_by(messages.c.id.desc())
    .limit(1)
)


class ProfileJobs(BackgroundJobs):
    def __init__(self, engine: ProfileParts) -> None:
        self.engine = engine

    async def in_transaction(self, conn: AsyncConnection, saved: SavedTurn) -> None:
        user_id = saved.user_id
        length = int(await conn.scalar(_LAST_USER_LENGTH, {"b_sid": saved.session_id}) or 0)
        min_chars, idle = self.engine.min_chars, self.engine.idle_seconds

        def merged(old: dict[str, Any]) -> dict[str, Any]:
            return {"user_id": user_id, "chars": int(old.get("chars", 0)) + length}

        await enqueue(  # the pending job's count grows: one read and one write
            conn,
            "profile.update",
            {"user_id": user_id, "chars": length},
            user_id=user_id,
            key=f"profile:{user_id}",
            merge=merged,
            delay_of=lambda p: 0.0 if int(p.get("chars", 0)) >= min_chars else idle,
        )

    def handlers(self) -> dict[str, Any]:
        return {"profile.update": self.run}

    async def run(self, payload: dict[str, Any], job: Job) -> None:
        user_id = payload.get("user_id") or job.user_id
        if not isinstance(user_id, str):
            raise PermanentJobError(f"bad payload {payload!r}: needs user_id")
        for _batch in range(50):  # each batch moves the cursor: a re-run resumes there
            if not await self._batch(user_id):
                return

    async def _batch(self, user_id: str) -> bool:
        """Process the next batch of new user text. False when there was none."""
        since = await self.engine.cursor(user_id)
        rows = await self.engine.store.read(
            sa.select(messages.c.id, messages.c.content, messages.c.created_at)
            .join(sessions, sessions.c.id == messages.c.session_id)
            .where(sessions.c.user_id == user_id, messages.c.role == "user")
            .where(messages.c.created_at > since)
            .order_by(messages.c.created_at)
            .limit(200)
        )
        if not rows:
            return False
        taken: list[Any] = []
        used = 0
        for r in rows:  # at least one message; a huge one is cut, never skipped
            if taken and used + len(r.content) > MAX_TEXT:
                break
            taken.append(r)
            used += len(r.content)
        await self.engine.extract_and_merge(
            user_id,
            "\n".join(r.content[:MAX_TEXT] for r in taken),
            source_ids=[r.id for r in taken],
            cursor=float(taken[-1].created_at),
        )
        return True
