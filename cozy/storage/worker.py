"""The in-process job worker: the TUI and the server run one; `cozy jobs run` drains.

Handlers are plain async callables `(payload, job) -> None`, registered by job
kind. A handler that raises `PermanentJobError` is parked as failed at once;
any other exception is retried with backoff. While a handler runs, the lease is
renewed, so a slow job is not stolen; a killed process stops renewing and the
next worker takes the job over when the lease runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cozy.storage.job_queue import JobQueue
from cozy.storage.jobs import Job, backlog

log = logging.getLogger("cozy.jobs")

BACKLOG_COUNT_EVERY = 5.0  # s between two counts of the pending jobs (storage/jobs.Backlog)
Handler = Callable[[dict[str, Any], Job], Awaitable[None]]
Listener = Callable[[Job, str], None]  # (job, "done" | "retry" | "failed")


class PermanentJobError(Exception):
    """A job that can never succeed (bad payload): fail it without retrying."""


@dataclass(slots=True)
class DrainStats:
    done: int = 0
    retried: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "done": self.done,
            "retried": self.retried,
            "failed": self.failed,
            "errors": self.errors,
        }


class JobWorker:
    def __init__(
        self,
        queue: JobQueue,
        handlers: dict[str, Handler] | None = None,
        *,
        lease: float = 60.0,
        poll_interval: float = 2.0,
        job_timeout: float = 300.0,
        keep_done: float = 86400.0,
        purge_every: float = 3600.0,
    ) -> None:
        self.queue = queue
        self.handlers: dict[str, Handler] = dict(handlers or {})
        self.lease = lease
        self.poll_interval = poll_interval
        self.job_timeout = job_timeout
        # done jobs are only history: pruned when idle, so the table (and every claim's
        # index scan) does not grow with each turn served
        self.keep_done = keep_done
        self.purge_every = purge_every
        self._next_purge = 0.0  # monotonic; the first idle moment purges
        self._next_count = 0.0  # monotonic; when the backlog is counted again
        self.purged = 0
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        # told about each job this worker finishes (the TUI toasts them); a listener
        # that raises is logged and never fails the job
        self.listeners: list[Listener] = []

    def register(self, kind: str, handler: Handler) -> None:
        self.handlers[kind] = handler

    # --- one job -----------------------------------------------------------
    async def run_one(
        self, *, include_deferred: bool = False, kinds: Sequence[str] | None = None
    ) -> tuple[Job, str] | None:
        """Claim and run one job (of these `kinds`, default: every kind with a handler).
        Returns (job, outcome) or None when nothing is runnable."""
        wanted = [k for k in self.handlers if kinds is None or k in kinds]
        if not wanted:
            return None
        job = await self.queue.claim(
            self.worker_id,
            kinds=wanted,
            lease=self.lease,
            include_deferred=include_deferred,
        )
        if job is None:
            return None
        outcome = await self._execute(job)
        for listener in self.listeners:
            try:
                listener(job, outcome)
            except Exception:  # a face's bug must not fail the worker
                log.exception("job listener failed for %s (%s)", job.id, job.kind)
        return job, outcome

    async def _execute(self, job: Job) -> str:
        handler = self.handlers[job.kind]
        renew = asyncio.create_task(self._renew(job))
        try:
            await asyncio.wait_for(handler(job.payload, job), self.job_timeout)
        except asyncio.CancelledError:
            await asyncio.shield(self.queue.release(job, self.worker_id))
            raise
        except PermanentJobError as exc:
            log.warning("job %s (%s) failed permanently: %s", job.id, job.kind, exc)
            return await self.queue.fail(job, self.worker_id, str(exc), permanent=True)
        except Exception as exc:  # any handler failure is recorded and retried
            reason = f"{type(exc).__name__}: {exc}"
            outcome = await self.queue.fail(job, self.worker_id, reason)
            log.warning(
                "job %s (%s) attempt %d failed (%s): %s",
                job.id,
                job.kind,
                job.attempts,
                outcome,
                reason,
            )
            return "failed" if outcome == "failed" else "retry"
        finally:
            renew.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renew
        await self.queue.complete(job, self.worker_id)
        return "done"

    async def _renew(self, job: Job) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            with contextlib.suppress(Exception):
                await self.queue.extend(job, self.worker_id, self.lease)

    # --- drain -------------------------------------------------------------
    async def drain(
        self,
        *,
        include_deferred: bool = True,
        max_jobs: int | None = None,
        kinds: Sequence[str] | None = None,
    ) -> DrainStats:
        """Run runnable jobs (of these `kinds`) until none is left. A retried job waits
        for its backoff."""
        stats = DrainStats()
        seen_retry: set[str] = set()
        while max_jobs is None or stats.done + stats.failed + stats.retried < max_jobs:
            result = await self.run_one(include_deferred=include_deferred, kinds=kinds)
            if result is None:
                break
            job, outcome = result
            if outcome == "done":
                stats.done += 1
            elif outcome == "failed":
                stats.failed += 1
                stats.errors.append(f"{job.id} ({job.kind}): gave up")
            else:
                stats.retried += 1
                if job.id in seen_retry:  # one retry per drain; the backoff runs after
                    break
                seen_retry.add(job.id)
                include_deferred = False  # don't spin on a job that just failed
        return stats

    # --- background loop ---------------------------------------------------
    def notify(self) -> None:
        """Wake the loop now (a turn just queued work)."""
        self._wake.set()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self.running:
            return
        self._stopping = False
        self._task = asyncio.create_task(self._loop(), name="cozy-job-worker")

    async def _count_backlog(self) -> None:
        now = time.monotonic()
        if now < self._next_count:
            return
        self._next_count = now + BACKLOG_COUNT_EVERY
        try:
            backlog.count(await self.queue.pending_count())
        except Exception as exc:  # a locked or full disk: the estimate goes on counting
            log.debug("counting the job backlog failed: %s", exc)

    async def _loop(self) -> None:
        while not self._stopping:
            await self._count_backlog()
            try:
                result = await self.run_one()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store may be briefly locked: keep the loop alive
                if getattr(exc, "hint", None):
                    # an explained error (the database did not answer in time, a full
                    # disk): its message says it all, a traceback per poll only buries it
                    log.warning("job worker iteration failed: %s", exc)
                else:
                    log.exception("job worker iteration failed")
                result = None
            if result is not None:
                continue
            await self._maybe_purge()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)

    async def _maybe_purge(self) -> None:
        now = time.monotonic()
        if now < self._next_purge:
            return
        self._next_purge = now + self.purge_every
        try:
            purged = await self.queue.purge_done(self.keep_done)
        except Exception as exc:  # a full or locked disk: next time
            log.warning("purging done jobs failed: %s", exc)
            return
        self.purged += purged
        if purged:
            log.info("purged %d done jobs older than %.0fs", purged, self.keep_done)

    async def stop(self, grace: float = 5.0) -> None:
        """Stop the loop; a job in flight is given back (or its lease simply expires)."""
        self._stopping = True
        task, self._task = self._task, None
        if task is None:
            return
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), grace)
        except (TimeoutError, asyncio.CancelledError):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
