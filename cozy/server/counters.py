"""Counters for the rate limiter: fixed-window totals shared by every worker process.

`CounterStore` is the small interface (`add(key, amount, ttl) -> new total`): diskcache
for one machine (here), Redis for several (ratelimit_redis.py), memory for one process.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger("cozy.server")


class CounterStore(Protocol):
    """Async: a networked store (Redis) must never block the event loop."""

    async def add(self, key: str, amount: int, ttl: float) -> int: ...
    async def get(self, key: str) -> int: ...
    def close(self) -> None: ...


class DiskCounterStore:
    """Counters in diskcache (SQLite underneath): shared by processes on one machine.

    When the disk is full or read-only, counting goes on in this process
    (`MemoryCounterStore`), logged once: a rate limiter must not turn a disk problem
    into a failed request."""

    def __init__(self, directory: Path) -> None:
        import diskcache

        self.fallback = MemoryCounterStore()
        self.broken: str | None = None
        self._cache: Any = None
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self._cache = diskcache.Cache(str(directory), timeout=2, eviction_policy="none")
        except (sqlite3.Error, OSError) as exc:
            self._failed(exc)

    def _failed(self, exc: BaseException) -> None:
        if self.broken is None:
            log.error(
                "rate-limit counters cannot be written (%s: %s): counting per process "
                "until the disk is writable",
                type(exc).__name__,
                exc,
            )
        self.broken = f"{type(exc).__name__}: {exc}"

    async def add(self, key: str, amount: int, ttl: float) -> int:
        if self._cache is None:
            return await self.fallback.add(key, amount, ttl)
        try:
            self._cache.add(key, 0, expire=ttl)  # no-op when the window's counter exists
            total = int(self._cache.incr(key, amount, default=0))
        except (sqlite3.Error, OSError) as exc:
            self._failed(exc)
            return await self.fallback.add(key, amount, ttl)
        self.broken = None
        return total

    async def get(self, key: str) -> int:
        if self._cache is None:
            return await self.fallback.get(key)
        try:
            value = self._cache.get(key, default=0)
        except (sqlite3.Error, OSError) as exc:
            self._failed(exc)
            return await self.fallback.get(key)
        return value if isinstance(value, int) else 0

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()


class MemoryCounterStore:
    """Single-process counters (tests, or when no shared store is wanted)."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[float, int]] = {}

    async def add(self, key: str, amount: int, ttl: float) -> int:
        now = time.time()
        expires, value = self._data.get(key, (now + ttl, 0))
        if expires < now:
            expires, value = now + ttl, 0
        self._data[key] = (expires, value + amount)
        return value + amount

    async def get(self, key: str) -> int:
        expires, value = self._data.get(key, (0.0, 0))
        return value if expires >= time.time() else 0

    def close(self) -> None:
        self._data.clear()
