"""Durable background jobs: an outbox table, claimed with a lease. This module owns the
tables and queues jobs inside a caller's transaction; job_queue.py claims, finishes and
lists them.

- Jobs are written in the SAME transaction as the messages they come from (the
  turn writer runs its hooks' `in_transaction` inside the answer's write), so a
  crash can never keep a message and lose its job, or the other way round.
- A worker claims a job by setting a lease (`locked_until`); on Postgres the
  candidate row is selected `FOR UPDATE SKIP LOCKED` so several workers never
  take the same job; SQLite serialises writers, so the same statement is atomic.
  A worker that dies leaves a lease that expires: the next worker re-runs the
  job (at least once). Handlers are idempotent (see `job_effects`).
- A failure is retried with exponential backoff, then parked as `failed`
  (visible in `cozy jobs list`, re-queued with `cozy jobs retry`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from cozy.storage.rows import from_row
from cozy.storage.schema import JSONType, metadata, new_id, utcnow

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("key", sa.String(200), nullable=True),  # dedupe key for pending jobs
    sa.Column("user_id", sa.String(64), nullable=True),
    sa.Column("payload", JSONType, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("max_attempts", sa.Integer, nullable=False, server_default="5"),
    sa.Column("run_after", sa.Float, nullable=False),
    sa.Column("locked_by", sa.String(100), nullable=True),
    sa.Column("locked_until", sa.Float, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.Index("ix_jobs_status_run_after", "status", "run_after"),
    sa.Index("ix_jobs_key", "key"),
)

# Effects already applied, by idempotency key, written in the same transaction as
# the effect itself: a job re-run after a crash sees its key and skips the write.
job_effects = sa.Table(
    "job_effects",
    metadata,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("applied_at", sa.Float, nullable=False),
)

TABLES = (jobs, job_effects)  # a migration step (migrations.py)


PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"


@dataclass(slots=True)
class Job:
    id: str
    kind: str
    payload: dict[str, Any]
    status: str
    attempts: int
    max_attempts: int
    run_after: float
    user_id: str | None = None
    key: str | None = None
    locked_by: str | None = None
    locked_until: float | None = None
    last_error: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    finished_at: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "status": self.status,
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "user_id": self.user_id,
            "key": self.key,
            "run_after": self.run_after,
            "locked_by": self.locked_by,
            "locked_until": self.locked_until,
            "last_error": self.last_error,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
            "payload": self.payload,
        }

    @classmethod
    def of(cls, row: Any) -> Job:
        """A job from its row of the jobs table (its columns are the fields)."""
        return from_row(cls, row, payload=row._mapping["payload"] or {})


_queued = 0  # jobs this process has queued (rolled-back ones too): see queued_count()


class Backlog:
    """This process's view of the pending jobs, for a limit checked on every saved turn
    without a COUNT per turn: the worker counts now and then (`counted`), and jobs
    queued since are added (coalesced ones too: an upper bound)."""

    def __init__(self) -> None:
        self.counted = 0
        self.queued_then = 0
        self.dropped: dict[str, int] = {}  # jobs not queued because of the limit, by kind
        self._warned = 0.0

    def count(self, pending: int) -> None:
        self.counted, self.queued_then = pending, _queued

    def estimate(self) -> int:
        return self.counted + max(0, _queued - self.queued_then)

    def drop(self, kind: str, limit: int, log: Any) -> None:
        """Count a job not queued; say so in the log at most once a minute."""
        self.dropped[kind] = self.dropped.get(kind, 0) + 1
        now = time.monotonic()
        if now - self._warned > 60:
            self._warned = now
            log.warning(
                "job backlog over its limit (about %d pending, limit %d): %s jobs are "
                "not queued (%d so far); raise memory.options.backlog_limit or give the "
                "worker a faster model",
                self.estimate(),
                limit,
                kind,
                self.dropped[kind],
            )


backlog = Backlog()


def queued_count() -> int:
    """How many jobs this process has queued so far: a turn that queued none need not
    wake the job worker (a claim is a write transaction)."""
    return _queued


# Built once: executed with parameters, they skip SQLAlchemy's per-call statement
# construction and cache-key walk (the turn hooks run on every saved turn).
# FOR UPDATE (Postgres; SQLite serialises writers): a worker claiming the job meanwhile
# waits, or has claimed it already and the row no longer matches `pending`
_PENDING_BY_KEY = (
    sa.select(jobs.c.id, jobs.c.payload)
    .where(jobs.c.key == sa.bindparam("b_key"), jobs.c.status == PENDING)
    .with_for_update()
)
_INSERT_JOB = jobs.insert()
# only while still pending: a payload merged into a job already running would be lost
_RENEW = jobs.update().where(jobs.c.id == sa.bindparam("b_id"), jobs.c.status == PENDING)


async def enqueue(
    conn: AsyncConnection,
    kind: str,
    payload: dict[str, Any],
    *,
    user_id: str | None = None,
    key: str | None = None,
    delay: float = 0.0,
    max_attempts: int = 5,
    merge: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    delay_of: Callable[[dict[str, Any]], float] | None = None,
    coalesce: Callable[[dict[str, Any]], bool] | None = None,
) -> str:
    """Queue a job inside the caller's transaction.

    With `key`, a job still pending under the same key is reused (debounce): its
    `run_after` moves to now+delay and `merge(old_payload)` (if given) becomes its
    payload. `delay_of(payload)`, if given, replaces `delay`: the delay that follows
    from the payload written (e.g. due at once once enough has accumulated).
    `coalesce(old_payload)`, if given, turns the debounce into coalescing: True merges
    into the pending job without moving its `run_after` (the first turn waits no
    longer for being joined), False (the job is full) queues a new job.
    Returns the job id.
    """
    global _queued
    _queued += 1
    now = utcnow()
    if key is not None:
        row = (await conn.execute(_PENDING_BY_KEY, {"b_key": key})).first()
        joins = row is not None and (coalesce is None or coalesce(dict(row.payload or {})))
        if row is not None and joins:
            values: dict[str, Any] = {"b_id": row.id, "updated_at": now}
            merged = merge(dict(row.payload or {})) if merge is not None else None
            if merged is not None:
                values["payload"] = merged
            if coalesce is None:
                wait = delay_of(merged if merged is not None else payload) if delay_of else delay
                values["run_after"] = now + wait
            if (await conn.execute(_RENEW, values)).rowcount:
                return str(row.id)
    job_id = new_id("job")
    body = merge({}) if merge is not None and not payload else payload
    wait = delay_of(body) if delay_of is not None else delay
    await conn.execute(
        _INSERT_JOB,
        {
            "id": job_id,
            "kind": kind,
            "key": key,
            "user_id": user_id,
            "payload": body,
            "status": PENDING,
            "attempts": 0,
            "max_attempts": max_attempts,
            "run_after": now + wait,
            "created_at": now,
            "updated_at": now,
        },
    )
    return job_id


async def mark_applied(conn: AsyncConnection, key: str) -> bool:
    """Record an effect key in the caller's transaction. False if it was applied before."""
    exists = (
        await conn.execute(sa.select(job_effects.c.key).where(job_effects.c.key == key))
    ).first()
    if exists is not None:
        return False
    await conn.execute(sa.insert(job_effects).values(key=key, applied_at=utcnow()))
    return True
