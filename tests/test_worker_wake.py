"""A saved turn wakes the job worker only when jobs were queued since the last wake-up
(each wake-up costs a claim, i.e. a write transaction, on the request path)."""

from __future__ import annotations

from pathlib import Path
from typing import cast

from cozy.engines.capabilities import SavedTurn
from cozy.runtime import _WakeWorker
from cozy.storage.job_queue import JobQueue
from cozy.storage.store import Store
from cozy.storage.worker import JobWorker

SAVED = SavedTurn("u1", "s1", "assistant", ("m1", "m2"))


class CountingWorker:
    running = True

    def __init__(self) -> None:
        self.wakes = 0

    def notify(self) -> None:
        self.wakes += 1


async def test_turns_that_queue_no_job_do_not_wake_the_worker(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'cozy.db'}")
    worker = CountingWorker()
    sink = _WakeWorker(cast(JobWorker, worker))
    try:
        await sink.committed(SAVED)
        assert worker.wakes == 1  # nothing seen yet: wake once
        await sink.committed(SAVED)
        await sink.committed(SAVED)
        assert worker.wakes == 1
        await JobQueue(store).enqueue("test.kind", {"n": 1})
        await sink.committed(SAVED)
        assert worker.wakes == 2
        await sink.committed(SAVED)
        assert worker.wakes == 2
        worker.running = False  # a stopped worker is never woken
        await JobQueue(store).enqueue("test.kind", {"n": 2})
        await sink.committed(SAVED)
        assert worker.wakes == 2
    finally:
        await store.close()
