"""Claiming, finishing and inspecting jobs: the worker's side and `cozy jobs`. Queueing
a job inside the transaction that causes it is `jobs.enqueue` (jobs.py)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from cozy.core.errors import NotFoundError
from cozy.storage.jobs import DONE, FAILED, PENDING, RUNNING, Job, enqueue, jobs
from cozy.storage.schema import utcnow
from cozy.storage.store import Store


def backoff(attempts: int, base: float = 2.0, cap: float = 300.0) -> float:
    """Seconds to wait before attempt `attempts + 1`: 2, 4, 8 … capped."""
    return float(min(cap, base * (2 ** max(0, attempts - 1))))


class JobQueue:
    """Claim, finish and inspect jobs. Works on SQLite and Postgres alike."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def enqueue(self, kind: str, payload: dict[str, Any], **kw: Any) -> str:
        async def write(conn: AsyncConnection) -> str:
            return await enqueue(conn, kind, payload, **kw)

        return await self.store.write(write)

    async def claim(
        self,
        worker_id: str,
        *,
        kinds: Sequence[str] | None = None,
        lease: float = 60.0,
        include_deferred: bool = False,
        now: float | None = None,
    ) -> Job | None:
        """Take one runnable job (pending and due, or running with an expired lease)."""
        now = utcnow() if now is None else now
        due = sa.true() if include_deferred else jobs.c.run_after <= now
        ready = sa.or_(
            sa.and_(jobs.c.status == PENDING, due),
            sa.and_(jobs.c.status == RUNNING, jobs.c.locked_until < now),
        )
        pick = sa.select(jobs.c.id).where(ready)
        if kinds is not None:
            pick = pick.where(jobs.c.kind.in_(list(kinds)))
        pick = pick.order_by(jobs.c.run_after, jobs.c.id).limit(1)
        pick = pick.with_for_update(skip_locked=True)  # no-op on SQLite (writers serialise)

        async def write(conn: AsyncConnection) -> Job | None:
            job_id = (await conn.execute(pick)).scalar()
            if job_id is None:
                return None
            res = await conn.execute(
                sa.update(jobs)
                .where(jobs.c.id == job_id, ready)
                .values(
                    status=RUNNING,
                    locked_by=worker_id,
                    locked_until=now + lease,
                    attempts=jobs.c.attempts + 1,
                    updated_at=now,
                )
                .returning(*jobs.c)
            )
            row = res.first()
            return Job.of(row) if row is not None else None

        return await self.store.write(write)

    async def extend(self, job: Job, worker_id: str, lease: float) -> bool:
        """Renew the lease of a job this worker holds."""
        return await self._update_held(
            job.id, worker_id, locked_until=utcnow() + lease, updated_at=utcnow()
        )

    async def complete(self, job: Job, worker_id: str) -> bool:
        now = utcnow()
        return await self._update_held(
            job.id, worker_id, status=DONE, locked_until=None, finished_at=now, updated_at=now
        )

    async def fail(self, job: Job, worker_id: str, error: str, *, permanent: bool = False) -> str:
        """Record a failure: back to pending with backoff, or `failed` when out of attempts."""
        now = utcnow()
        give_up = permanent or job.attempts >= job.max_attempts
        values: dict[str, Any] = {
            "last_error": error[:2000],
            "locked_until": None,
            "updated_at": now,
        }
        if give_up:
            values.update(status=FAILED, finished_at=now)
        else:
            values.update(status=PENDING, run_after=now + backoff(job.attempts))
        await self._update_held(job.id, worker_id, **values)
        job.last_error = values["last_error"]  # the caller's copy says why, too
        return FAILED if give_up else PENDING

    async def release(self, job: Job, worker_id: str) -> None:
        """Give a claimed job back untouched (worker shutting down): not an attempt."""
        await self._update_held(
            job.id,
            worker_id,
            status=PENDING,
            locked_until=None,
            attempts=max(0, job.attempts - 1),
            updated_at=utcnow(),
        )

    async def _update_held(self, job_id: str, worker_id: str, **values: Any) -> bool:
        async def write(conn: AsyncConnection) -> int:
            res = await conn.execute(
                sa.update(jobs)
                .where(jobs.c.id == job_id, jobs.c.locked_by == worker_id)
                .where(jobs.c.status == RUNNING)
                .values(**values)
            )
            return int(res.rowcount or 0)

        return await self.store.write(write) > 0

    async def retry(self, job_id: str) -> Job:
        """Re-queue a failed (or stuck) job now, with a fresh set of attempts."""
        now = utcnow()

        async def write(conn: AsyncConnection) -> int:
            res = await conn.execute(
                sa.update(jobs)
                .where(jobs.c.id == job_id, jobs.c.status != DONE)
                .values(
                    status=PENDING,
                    attempts=0,
                    run_after=now,
                    locked_by=None,
                    locked_until=None,
                    finished_at=None,
                    updated_at=now,
                )
            )
            return int(res.rowcount or 0)

        if await self.store.write(write) == 0:
            job = await self.get(job_id)  # raises NotFoundError when missing
            raise NotFoundError(
                f"job '{job_id}' is {job.status}; only pending, running or failed jobs retry",
                hint="list retryable jobs with `cozy jobs list --status failed`",
            )
        return await self.get(job_id)

    async def get(self, job_id: str) -> Job:
        rows = await self.store.read(sa.select(jobs).where(jobs.c.id == job_id))
        if not rows:
            raise NotFoundError(f"no job '{job_id}'", hint="list jobs with `cozy jobs list`")
        return Job.of(rows[0])

    async def list(
        self, *, status: str | None = None, user_id: str | None = None, limit: int = 50
    ) -> list[Job]:
        stmt = sa.select(jobs).order_by(jobs.c.id.desc()).limit(limit)
        if status:
            stmt = stmt.where(jobs.c.status == status)
        if user_id:
            stmt = stmt.where(jobs.c.user_id == user_id)
        return [Job.of(r) for r in await self.store.read(stmt)]

    async def counts(self) -> dict[str, int]:
        rows = await self.store.read(
            sa.select(jobs.c.status, sa.func.count()).group_by(jobs.c.status)
        )
        out = {PENDING: 0, RUNNING: 0, DONE: 0, FAILED: 0}
        out.update({str(r[0]): int(r[1]) for r in rows})
        return out

    async def pending_count(self) -> int:
        rows = await self.store.read(
            sa.select(sa.func.count()).select_from(jobs).where(jobs.c.status == PENDING)
        )
        return int(rows[0][0]) if rows else 0

    async def due_count(self) -> int:
        """Pending jobs whose time has come (a background worker's reason to go on)."""
        rows = await self.store.read(
            sa.select(sa.func.count()).where(
                jobs.c.status == PENDING, jobs.c.run_after <= time.time()
            )
        )
        return int(rows[0][0]) if rows else 0

    async def purge_done(self, older_than: float = 7 * 86400) -> int:
        cutoff = time.time() - older_than

        async def write(conn: AsyncConnection) -> int:
            res = await conn.execute(
                sa.delete(jobs).where(jobs.c.status == DONE, jobs.c.finished_at < cutoff)
            )
            return int(res.rowcount or 0)

        return await self.store.write(write)
