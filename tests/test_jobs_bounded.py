"""The job table does not grow with every turn: done jobs are pruned by the running
worker; a hung handler is cut at the job deadline and the worker moves on."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from cozy.storage.job_queue import JobQueue
from cozy.storage.store import Store
from cozy.storage.worker import JobWorker


async def test_worker_prunes_done_jobs_and_cuts_a_hung_one(cozy_home: Path) -> None:
    store = await Store.open(f"sqlite:///{cozy_home / 'jobs.db'}")
    try:
        q = JobQueue(store)
        ran: list[int] = []

        async def ok(payload: dict[str, object], job: object) -> None:
            ran.append(int(payload["n"]))  # type: ignore[call-overload]

        async def hung(payload: dict[str, object], job: object) -> None:
            await asyncio.sleep(3600)  # a provider that never answers

        worker = JobWorker(
            q, {"ok": ok, "hung": hung}, poll_interval=0.05, job_timeout=0.5, keep_done=0.5
        )
        for n in range(5):
            await q.enqueue("ok", {"n": n})
        assert (await worker.drain()).done == 5
        assert (await q.counts())["done"] == 5
        await asyncio.sleep(0.6)  # the five are older than keep_done now
        await q.enqueue("hung", {})
        await q.enqueue("ok", {"n": 99})
        started = time.monotonic()
        worker.start()
        for _ in range(1500):  # up to ~30 s on a loaded machine
            if 99 in ran and worker.purged >= 5:
                break
            await asyncio.sleep(0.02)
        await worker.stop()
        assert 99 in ran, "the hung job held the worker"
        assert time.monotonic() - started < 0.5 + 10
        assert worker.purged >= 5
        counts = await q.counts()
        assert counts["done"] <= 1 and counts["running"] == 0  # the hung one went back
    finally:
        await store.close()
