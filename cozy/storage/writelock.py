"""One writer at a time per process and event loop, for SQLite.

SQLite allows one writer. Without this, concurrent write transactions of one
process wait in SQLite's busy handler, which sleeps in growing steps (up to
100 ms) instead of waking when the lock frees. Queued here, the next writer
starts as soon as the previous one commits. Other processes still rely on
`busy_timeout`.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


class WriteQueue:
    def __init__(self, max_wait: float = 5.0) -> None:
        self.max_wait = max_wait
        # one lock per event loop (a store may be used from a test client's loop too)
        self._locks: weakref.WeakKeyDictionary[Any, asyncio.Lock] = weakref.WeakKeyDictionary()
        self._holders: set[asyncio.Task[Any]] = set()

    async def run(self, fn: Callable[[], Awaitable[T]]) -> T:
        task = asyncio.current_task()
        if task is None or task in self._holders:  # a write inside a write: no waiting
            return await fn()
        lock = self._locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())
        try:
            if lock.locked():
                await asyncio.wait_for(lock.acquire(), self.max_wait)
            else:
                await lock.acquire()  # free: taken at once, no timer
        except TimeoutError:  # never worse than without the queue: SQLite's own waiting
            return await fn()
        self._holders.add(task)
        try:
            return await fn()
        finally:
            self._holders.discard(task)
            lock.release()
