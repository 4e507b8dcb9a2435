"""Rate limits per API key / user and per client IP: requests and tokens per minute.

Fixed one-minute windows counted in a shared store, so every worker process (and,
with Redis, every host) sees the same counts. `CounterStore` is the small
interface a Redis store implements later: `add(key, amount, ttl) -> new total`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cozy.core.errors import CozyError

WINDOW = 60.0
log = logging.getLogger("cozy.server")


class RateLimited(CozyError):
    http_status = 429
    code = "rate_limit_exceeded"
    error_type = "rate_limit_error"

    def __init__(self, message: str, *, retry_after: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


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


@dataclass(slots=True)
class Limits:
    rpm: int = 600
    tpm: int = 200_000
    ip_rpm: int = 1200


class RateLimiter:
    def __init__(self, store: CounterStore, limits: Limits) -> None:
        self.store = store
        self.limits = limits
        self._tasks: set[asyncio.Task[None]] = set()

    @staticmethod
    def _window(now: float) -> tuple[int, int]:
        start = int(now // WINDOW)
        retry = max(1, math.ceil((start + 1) * WINDOW - now))
        return start, retry

    async def check_ip(self, ip: str) -> None:
        if self.limits.ip_rpm <= 0:
            return
        window, retry = self._window(time.time())
        count = await self.store.add(f"rl:ip:{ip}:{window}", 1, WINDOW * 2)
        if count > self.limits.ip_rpm:
            raise RateLimited(
                f"too many requests from {ip}: the limit is {self.limits.ip_rpm} per minute",
                retry_after=retry,
                hint=f"retry after {retry}s or raise COZY_SERVER_IP_RATE_LIMIT_RPM",
            )

    async def check_principal(self, principal: str) -> None:
        window, retry = self._window(time.time())
        if self.limits.tpm > 0:
            used = await self.store.get(f"rl:tok:{principal}:{window}")
            if used >= self.limits.tpm:
                raise RateLimited(
                    f"token limit reached: {used:,} of {self.limits.tpm:,} tokens this minute",
                    retry_after=retry,
                    hint=f"retry after {retry}s or raise COZY_SERVER_RATE_LIMIT_TPM",
                )
        if self.limits.rpm > 0:
            count = await self.store.add(f"rl:req:{principal}:{window}", 1, WINDOW * 2)
            if count > self.limits.rpm:
                raise RateLimited(
                    f"rate limit reached: the limit is {self.limits.rpm} requests per minute",
                    retry_after=retry,
                    hint=f"retry after {retry}s or raise COZY_SERVER_RATE_LIMIT_RPM",
                )

    def add_tokens_soon(self, principal: str, tokens: int) -> None:
        """`add_tokens` from synchronous code (an event handler): counted in a task of
        its own, milliseconds later, without holding up the answer."""
        if self.limits.tpm <= 0 or tokens <= 0:
            return
        task = asyncio.get_running_loop().create_task(self.add_tokens(principal, tokens))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def add_tokens(self, principal: str, tokens: int) -> None:
        if self.limits.tpm > 0 and tokens > 0:
            window, _ = self._window(time.time())
            await self.store.add(f"rl:tok:{principal}:{window}", tokens, WINDOW * 2)

    def close(self) -> None:
        self.store.close()
