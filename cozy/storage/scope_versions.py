"""Per-scope versions kept fresh across instances: the DB counter, Redis as the fast path.

A scope (one user's memories, one user's knowledge) has a version counter bumped
inside every write transaction: that counter is the truth. An instance caches the
versions it has read (its vector matrix is built for one of them). To know whether
a cached version is still current without a DB round trip, it reads the scope's
*change token* in Redis, a random string that every committed write replaces: the
same token as when the version was read means nothing was written since.

What keeps this correct:

- the token is read BEFORE the DB counter, and a writer replaces it AFTER its commit,
  so a write that lands in between changes the token again and the next read re-reads;
- tokens are random (never counters), so Redis losing its data (restart, eviction,
  expiry) can never bring an old token back; a missing token is created (`SET NX`)
  and the DB read;
- each read also reads a global epoch; an instance whose Redis calls failed (its
  publishes may be lost) replaces the epoch when Redis answers again, which makes
  every instance re-read every scope;
- a cached version is trusted for at most `max_age` s even when its token matches:
  the bound on staleness if a writer dies between its commit and its publish;
- with Redis down or unknown, the DB counter is read (at most every `ttl` s;
  0 = on every read); with no Redis configured (local mode), at most every
  `local_ttl` s where that is longer: this process's own writes drop the cached
  version at once (`publish`), other processes' writes are seen within `local_ttl`.

Redis calls are async and go through the link's circuit breaker (see `RedisLink`):
one `MGET` on a local Redis costs a fraction of a DB round trip, and a Redis that
hangs costs one timeout per `retry` s, after which reads go to the DB counter.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from cozy.storage.redis_cache import RedisLink

log = logging.getLogger("cozy.redis")

LinkSource = Callable[[], "RedisLink | None"]


class ScopeVersions:
    """Cached per-scope versions of one namespace (`memory`, `knowledge`)."""

    def __init__(
        self,
        ns: str,
        read: Callable[[str], Awaitable[int]],
        *,
        link: LinkSource | None = None,
        ttl: float = 0.0,
        local_ttl: float = 0.0,
        max_age: float = 5.0,
        expire: int = 86_400,
        retry: float = 1.0,
    ) -> None:
        self.ns = ns
        self.read = read
        self.link_source = link
        self.ttl = ttl
        self.local_ttl = local_ttl  # `ttl` when no Redis link is configured at all
        self.max_age = max_age
        self.expire = expire
        self.retry = retry
        self._cache: dict[str, tuple[int, str | None, float]] = {}  # version, token, read at
        self._hooked: set[int] = set()
        self.db_reads = 0  # how often the DB counter was read (tests, bench)
        self.fast = 0  # how often a Redis token answered instead

    # --- Redis plumbing -----------------------------------------------------------
    def _link(self) -> RedisLink | None:
        link = self.link_source() if self.link_source is not None else None
        if link is not None and id(link) not in self._hooked:
            self._hooked.add(id(link))
            link.on_recover.append(lambda: self._new_epoch(link))
        return link

    def _keys(self, link: RedisLink, scope: str) -> tuple[str, str]:
        return f"{link.prefix}ver:epoch", f"{link.prefix}ver:{self.ns}:{scope}"

    async def token(self, scope: str) -> str | None:
        """`epoch/token` of a scope, None when Redis is off or does not answer."""
        link = self._link()
        if link is None:
            return None
        from cozy.storage.redis_cache import RedisDown

        epoch_key, key = self._keys(link, scope)

        async def op(client: Redis) -> tuple[Any, Any]:
            epoch, tok = await client.mget(epoch_key, key)
            if tok is None:  # never written since Redis started (or expired): make one
                fresh = uuid.uuid4().hex
                made = await client.set(key, fresh, nx=True, ex=self.expire)
                tok = fresh if made else await client.get(key)
            return epoch, tok

        try:
            epoch, tok = await link.call(f"{self.ns} version token", op)
        except RedisDown:
            return None
        if tok is None:
            return None
        return f"{_text(epoch)}/{_text(tok)}"

    async def publish(self, scopes: Iterable[str]) -> None:
        """After a write committed: every instance's cached version of `scopes` is stale."""
        names = list(dict.fromkeys(scopes))
        for scope in names:  # this instance knows at once, whatever `ttl` allows
            self._cache.pop(scope, None)
        link = self._link()
        if link is None or not names:
            return
        from cozy.storage.redis_cache import RedisDown

        async def op(client: Redis) -> Any:
            pipe = client.pipeline(transaction=False)
            for scope in names:
                pipe.set(self._keys(link, scope)[1], uuid.uuid4().hex, ex=self.expire)
            return await pipe.execute()

        # awaited (one round trip, or nothing while the breaker is open) so another
        # instance reading right after this write sees it; a lost publish is caught by
        # the new epoch this instance sets when Redis answers again
        with contextlib.suppress(RedisDown):
            await link.call(f"{self.ns} version publish", op)

    async def _new_epoch(self, link: RedisLink) -> None:
        self._cache.clear()
        key = f"{link.prefix}ver:epoch"
        await link.call("version epoch", lambda c: c.set(key, uuid.uuid4().hex))

    # --- reads ----------------------------------------------------------------------
    async def get(self, scope: str, *, fresh: bool = False, ttl: float | None = None) -> int:
        """The scope's current version.

        `fresh`: do not rely on the time-based cache (a matching Redis token still
        proves that nothing was written since the cached read).
        """
        now = time.monotonic()
        cached = self._cache.get(scope)
        tok = await self.token(scope)
        if cached is not None:
            age = now - cached[2]
            if tok is not None:
                if cached[1] == tok and age < self.max_age:
                    self.fast += 1
                    return cached[0]
            elif not fresh:
                limit = self.ttl if ttl is None else ttl
                if self.local_ttl > limit and self._link() is None:
                    limit = self.local_ttl  # local mode: only other local processes write
                if age < limit:
                    return cached[0]
        version = await self.read(scope)
        self.db_reads += 1
        self._cache[scope] = (version, tok, now)
        return version

    def forget(self, scope: str | None = None) -> None:
        if scope is None:
            self._cache.clear()
        else:
            self._cache.pop(scope, None)


def _text(value: object) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)
