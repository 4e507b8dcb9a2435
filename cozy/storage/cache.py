"""Two cache levels, per the brief.

L1: in-process TTL (personalities 300 s, tool schemas 600 s) — `TTLCache`.
L2: shared between processes — diskcache locally (Redis in server mode later):
knowledge results 3600 s, profile summaries 1800 s — `L2Cache`.

Invalidation is by namespace generation: `bump(ns)` makes every key written
under the old generation unreachable at once (other processes see the new
generation on their next read), without scanning keys.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Hashable
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

V = TypeVar("V")

TTL = {"personality": 300.0, "tool_schemas": 600.0, "knowledge": 3600.0, "profile": 1800.0}


class TTLCache(Generic[V]):
    """A small in-process cache with per-entry expiry (L1)."""

    def __init__(self, ttl: float, maxsize: int = 1024) -> None:
        self.ttl = ttl
        self.maxsize = maxsize
        self._data: dict[Hashable, tuple[float, V]] = {}

    def get(self, key: Hashable) -> V | None:
        item = self._data.get(key)
        if item is None:
            return None
        expires, value = item
        if expires < time.monotonic():
            self._data.pop(key, None)
            return None
        return value

    def set(self, key: Hashable, value: V) -> None:
        if len(self._data) >= self.maxsize:
            self._data.pop(next(iter(self._data)))
        self._data[key] = (time.monotonic() + self.ttl, value)

    def invalidate(self, key: Hashable | None = None) -> None:
        if key is None:
            self._data.clear()
        else:
            self._data.pop(key, None)


class L2Cache(Protocol):
    """Async, so that a networked L2 (Redis) never blocks the event loop; diskcache is
    local and answers in microseconds, so it runs inline."""

    async def get(self, ns: str, key: str) -> Any | None: ...
    async def set(self, ns: str, key: str, value: Any, ttl: float | None = None) -> None: ...
    async def bump(self, ns: str) -> None: ...
    def close(self) -> None: ...


class DiskL2Cache:
    """L2 on diskcache: safe across processes on one machine (SQLite underneath).

    A cache never fails a request: a full or read-only disk (or a locked file) makes
    reads miss and writes drop."""

    def __init__(self, directory: Path) -> None:
        import diskcache

        self._cache: Any = None
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self._cache = diskcache.Cache(str(directory), timeout=5, size_limit=512 * 1024 * 1024)
        except (sqlite3.Error, OSError) as exc:  # full or read-only disk: run uncached
            logging.getLogger("cozy.cache").warning("no L2 cache at %s: %s", directory, exc)

    def _gen(self, ns: str) -> int:
        value = self._cache.get(f"gen:{ns}", default=0)
        return int(value) if isinstance(value, int) else 0

    async def get(self, ns: str, key: str) -> Any | None:
        if self._cache is None:
            return None
        try:
            return self._cache.get(f"{ns}:{self._gen(ns)}:{key}", default=None)
        except (sqlite3.Error, OSError):
            return None

    async def set(self, ns: str, key: str, value: Any, ttl: float | None = None) -> None:
        expire = ttl if ttl is not None else TTL.get(ns)
        if self._cache is not None:
            with contextlib.suppress(sqlite3.Error, OSError):
                self._cache.set(f"{ns}:{self._gen(ns)}:{key}", value, expire=expire)

    async def bump(self, ns: str) -> None:
        if self._cache is not None:
            with contextlib.suppress(sqlite3.Error, OSError):
                self._cache.incr(f"gen:{ns}", default=0)

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()
