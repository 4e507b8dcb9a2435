"""Redis in server mode: one connection pool per process, the L2 cache on it.

`RedisLink` owns the pool (size from settings, 50 by default) and tracks whether
Redis answers. Losing Redis never fails a request: the L2 cache misses and
writes are dropped, rate limits fall back to per-instance counters
(`cozy.server.ratelimit_redis`). The loss is logged once per outage at ERROR and
shown by `/ready` and `cozy doctor` until Redis is back.

Values are pickled (as diskcache does): Redis is the deployment's own trusted
store, never user input. Invalidation is by namespace generation (`INCR`), so a
`bump` on one instance is seen by every instance on its next read; an instance
that lost Redis (its bumps may be lost) bumps a global epoch when it is back.
"""

from __future__ import annotations

import logging
import pickle
import threading
import time
from collections.abc import Callable
from typing import Any

from cozy.core.errors import StorageUnavailable
from cozy.storage.cache import TTL

log = logging.getLogger("cozy.redis")


def redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return url


class RedisLink:
    """A pooled synchronous Redis client with outage tracking.

    Synchronous on purpose: the cache and counter interfaces are synchronous, and
    a local Redis answers in well under a millisecond. Short socket timeouts keep
    an outage from stalling a request.
    """

    def __init__(
        self, url: str, *, pool_size: int = 50, prefix: str = "cozy:", timeout: float = 0.5
    ) -> None:
        import redis

        self.url = url
        self.prefix = prefix
        self.pool = redis.ConnectionPool.from_url(
            url,
            max_connections=pool_size,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
        )
        self.client = redis.Redis(connection_pool=self.pool)
        self._lock = threading.Lock()
        self.down_since: float | None = None
        self.last_error: str | None = None
        self.on_recover: list[Callable[[], None]] = []

    def ping(self) -> None:
        """Raise StorageUnavailable naming the URL when Redis does not answer (start-up)."""
        import redis

        try:
            self.client.ping()
        except (redis.RedisError, OSError) as exc:
            raise StorageUnavailable(
                f"cannot connect to Redis at {redact(self.url)} ({exc})",
                hint="start Redis or fix COZY_REDIS_URL (unset it to run without Redis)",
            ) from exc
        self.ok()

    def failed(self, exc: BaseException, what: str) -> None:
        with self._lock:
            first = self.down_since is None
            if first:
                self.down_since = time.time()
            self.last_error = f"{type(exc).__name__}: {exc}"
        if first:
            log.error(
                "REDIS UNREACHABLE at %s (%s): L2 cache disabled and rate limits are "
                "per instance until it returns",
                redact(self.url),
                self.last_error,
                extra={"what": what},
            )

    def ok(self) -> None:
        if self.down_since is None:
            return
        with self._lock:
            was = self.down_since
            self.down_since = None
        if was is not None:
            log.warning("Redis at %s is back after %.1fs", redact(self.url), time.time() - was)
            for hook in self.on_recover:
                hook()

    @property
    def healthy(self) -> bool:
        return self.down_since is None

    def status(self) -> tuple[bool, str]:
        """(ok, detail) for /ready and doctor; probes Redis when it was down."""
        import redis

        try:
            self.client.ping()
            self.ok()
        except (redis.RedisError, OSError) as exc:
            self.failed(exc, "ping")
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

    def close(self) -> None:
        self.pool.disconnect()


class RedisL2Cache:
    """L2 cache on Redis, shared by every instance (implements `L2Cache`)."""

    def __init__(self, link: RedisLink) -> None:
        self.link = link
        self.p = link.prefix + "l2:"
        link.on_recover.append(self._new_epoch)

    def _gen(self, ns: str) -> str:
        """`epoch.generation` of a namespace, in one round trip."""
        epoch, gen = self.link.client.mget(f"{self.p}epoch", f"{self.p}gen:{ns}")
        return f"{int(epoch or 0)}.{int(gen or 0)}"

    def _new_epoch(self) -> None:
        """After an outage: a `bump` may have been lost meanwhile, so drop every entry."""
        import redis

        try:
            self.link.client.incr(f"{self.p}epoch")
        except (redis.RedisError, OSError):
            return

    def get(self, ns: str, key: str) -> Any | None:
        import redis

        try:
            raw = self.link.client.get(f"{self.p}{ns}:{self._gen(ns)}:{key}")
        except (redis.RedisError, OSError) as exc:
            self.link.failed(exc, "cache get")
            return None
        self.link.ok()
        if raw is None:
            return None
        return pickle.loads(bytes(raw))  # type: ignore[arg-type]  # our own trusted writes

    def set(self, ns: str, key: str, value: Any, ttl: float | None = None) -> None:
        import redis

        expire = ttl if ttl is not None else TTL.get(ns)
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            name = f"{self.p}{ns}:{self._gen(ns)}:{key}"
            if expire:
                self.link.client.set(name, data, px=max(1, int(expire * 1000)))
            else:
                self.link.client.set(name, data)
        except (redis.RedisError, OSError) as exc:
            self.link.failed(exc, "cache set")
            return
        self.link.ok()

    def bump(self, ns: str) -> None:
        import redis

        try:
            self.link.client.incr(f"{self.p}gen:{ns}")
        except (redis.RedisError, OSError) as exc:
            self.link.failed(exc, "cache bump")
            return
        self.link.ok()

    def close(self) -> None:
        return None  # the link (shared with the rate limits) is closed by its owner
