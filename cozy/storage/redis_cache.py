"""Redis in server mode: one async connection pool per process, the L2 cache on it.

`RedisLink` owns the pool (size from settings, 50 by default), runs every command
with a deadline on the event loop (redis.asyncio: a hung Redis never blocks the
loop), and is a circuit breaker: after a failure the link is open for `retry` s, and
every call in that time is answered "down" at once without touching Redis; then one
call probes (the others still skip) and closes it when Redis answers. So a hung Redis
costs one timeout per `retry` s for the whole process, not one per call.

Losing Redis never fails a request: the L2 cache misses and writes are dropped, rate
limits fall back to per-instance counters (`cozy.server.ratelimit_redis`). The loss is
logged once per outage at ERROR and shown by `/ready` and `cozy doctor` until Redis is
back.

Values are pickled (as diskcache does): Redis is the deployment's own trusted
store, never user input. Invalidation is by namespace generation (`INCR`), so a
`bump` on one instance is seen by every instance on its next read; an instance
that lost Redis (its bumps may be lost) bumps a global epoch when it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from cozy.core.errors import StorageUnavailable
from cozy.storage.cache import TTL

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("cozy.redis")
T = TypeVar("T")


def redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return url


class RedisDown(Exception):
    """Redis did not answer (or the breaker is open): take the fallback."""


class RedisLink:
    """A pooled async Redis client with a deadline per call and a circuit breaker."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 50,
        prefix: str = "cozy:",
        timeout: float = 0.5,
        retry: float = 1.0,
    ) -> None:
        from redis.asyncio import BlockingConnectionPool, Redis

        self.url = url
        self.prefix = prefix
        self.timeout = timeout
        self.retry = retry
        # blocking: a burst past `pool_size` waits (up to `timeout`) for a free
        # connection instead of failing at once and opening the breaker
        self.pool = BlockingConnectionPool.from_url(
            url,
            max_connections=pool_size,
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
        )
        self.client: Redis = Redis(connection_pool=self.pool)
        self.down_since: float | None = None
        self.last_error: str | None = None
        self._retry_at = 0.0  # monotonic: the breaker lets one probe through after this
        self._probing = False
        self.on_recover: list[Callable[[], Awaitable[None]]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self.calls = 0  # commands sent to Redis (tests, bench)
        self.skipped = 0  # calls answered "down" by the open breaker without a round trip

    async def call(
        self, what: str, op: Callable[[Redis], Awaitable[T]], *, force: bool = False
    ) -> T:
        """`op(client)` within the deadline; RedisDown when it fails or the breaker is open.

        `force`: send it even while the breaker is open (health probes, which must tell
        the truth now, not after the retry interval)."""
        import redis

        probe = False
        if self.down_since is not None and not force:
            if self._probing or time.monotonic() < self._retry_at:
                self.skipped += 1
                raise RedisDown(self.last_error or "redis is down")
            self._probing = probe = True  # half-open: this call probes, the others skip
        self.calls += 1
        try:
            # connect + one read; the socket timeouts bound each, this bounds the sum
            async with asyncio.timeout(self.timeout * 2):
                result = await op(self.client)
        except (redis.RedisError, OSError, TimeoutError) as exc:
            self.failed(exc, what)
            raise RedisDown(self.last_error) from exc
        finally:
            if probe:
                self._probing = False
        self.ok()
        return result

    async def ping(self) -> None:
        """Raise StorageUnavailable naming the URL when Redis does not answer (start-up)."""
        import redis

        try:
            async with asyncio.timeout(self.timeout * 2):
                await self.client.ping()
        except (redis.RedisError, OSError, TimeoutError) as exc:
            raise StorageUnavailable(
                f"cannot connect to Redis at {redact(self.url)} ({exc})",
                hint="start Redis or fix COZY_REDIS_URL (unset it to run without Redis)",
            ) from exc
        self.ok()

    def failed(self, exc: BaseException, what: str) -> None:
        first = self.down_since is None
        if first:
            self.down_since = time.time()
        self._retry_at = time.monotonic() + self.retry
        self.last_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if first:
            log.error(
                "REDIS UNREACHABLE at %s (%s): L2 cache disabled and rate limits are "
                "per instance until it returns",
                redact(self.url),
                self.last_error,
                extra={"what": what},
            )

    def ok(self) -> None:
        was, self.down_since = self.down_since, None
        if was is None:
            return
        log.warning("Redis at %s is back after %.1fs", redact(self.url), time.time() - was)
        for hook in self.on_recover:
            self.spawn(hook())

    def spawn(self, work: Awaitable[Any]) -> None:
        """Fire-and-forget Redis work (publishes, epochs), kept alive until done."""

        async def run() -> None:
            with contextlib.suppress(RedisDown):  # recorded by the link; retried on recovery
                await work

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def healthy(self) -> bool:
        return self.down_since is None

    async def status(self) -> tuple[bool, str]:
        """(ok, detail) for /ready and doctor; probes Redis (through the breaker)."""
        with contextlib.suppress(RedisDown):
            await self.call("ping", lambda c: c.ping(), force=True)
        if self.down_since is None:
            return True, (
                f"redis {redact(self.url)}: shared cache and rate limits, "
                "index freshness by change token"
            )
        return False, (
            f"redis {redact(self.url)} unreachable for {time.time() - self.down_since:.0f}s "
            f"({self.last_error}): degraded to per-instance rate limits, no L2 cache, "
            "index freshness read from the database"
        )

    async def flush(self) -> None:
        """Wait (bounded) for the fire-and-forget work started so far."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self.timeout * 4)

    async def close(self) -> None:
        await self.flush()
        await self.client.aclose()
        await self.pool.disconnect()


class RedisL2Cache:
    """L2 cache on Redis, shared by every instance (implements `L2Cache`)."""

    def __init__(self, link: RedisLink) -> None:
        self.link = link
        self.p = link.prefix + "l2:"
        link.on_recover.append(self._new_epoch)

    async def _name(self, client: Redis, ns: str, key: str) -> str:
        """The key under the namespace's `epoch.generation` (one round trip)."""
        epoch, gen = await client.mget(f"{self.p}epoch", f"{self.p}gen:{ns}")
        return f"{self.p}{ns}:{int(epoch or 0)}.{int(gen or 0)}:{key}"

    async def _new_epoch(self) -> None:
        """After an outage: a `bump` may have been lost meanwhile, so drop every entry."""
        await self.link.call("cache epoch", lambda c: c.incr(f"{self.p}epoch"))

    async def get(self, ns: str, key: str) -> Any | None:
        async def op(client: Redis) -> Any:
            return await client.get(await self._name(client, ns, key))

        try:
            raw = await self.link.call("cache get", op)
        except RedisDown:
            return None
        if raw is None:
            return None
        return pickle.loads(bytes(raw))  # our own trusted writes

    async def set(self, ns: str, key: str, value: Any, ttl: float | None = None) -> None:
        expire = ttl if ttl is not None else TTL.get(ns)
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)

        async def op(client: Redis) -> Any:
            name = await self._name(client, ns, key)
            if expire:
                return await client.set(name, data, px=max(1, int(expire * 1000)))
            return await client.set(name, data)

        try:
            await self.link.call("cache set", op)
        except RedisDown:
            return

    async def bump(self, ns: str) -> None:
        try:
            await self.link.call("cache bump", lambda c: c.incr(f"{self.p}gen:{ns}"))
        except RedisDown:
            return

    def close(self) -> None:
        return None  # the link (shared with the rate limits) is closed by its owner
