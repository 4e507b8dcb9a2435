"""Rate-limit counters on Redis, shared by every `cozy serve` instance.

`RedisCounterStore` implements `CounterStore`: `INCRBY` + `EXPIRE NX` in one
round trip. When Redis does not answer it falls back to per-instance counters
(`MemoryCounterStore`) and says so loudly (an ERROR log once per outage, and the
`redis` check of `/ready` until it is back); the limits then hold per instance
instead of across all of them. `counter_store(settings)` picks Redis when
`COZY_REDIS_URL` is set, diskcache otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cozy.server.counters import CounterStore, DiskCounterStore, MemoryCounterStore

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from cozy.settings import Settings
    from cozy.storage.redis_cache import RedisLink


class RedisCounterStore:
    def __init__(self, link: RedisLink) -> None:
        self.link = link
        self.p = link.prefix + "rl:"
        self.fallback = MemoryCounterStore()

    async def add(self, key: str, amount: int, ttl: float) -> int:
        from cozy.storage.redis_cache import RedisDown

        async def op(client: Redis) -> Any:
            pipe = client.pipeline(transaction=False)
            pipe.incrby(self.p + key, amount)
            pipe.expire(self.p + key, max(1, int(ttl)), nx=True)
            return await pipe.execute()

        try:
            total, _ = await self.link.call("rate limit", op)
        except RedisDown:
            return await self.fallback.add(key, amount, ttl)
        return int(total)

    async def get(self, key: str) -> int:
        from cozy.storage.redis_cache import RedisDown

        try:
            raw = await self.link.call("rate limit", lambda c: c.get(self.p + key))
        except RedisDown:
            return await self.fallback.get(key)
        return int(raw) if raw is not None else 0

    def close(self) -> None:
        self.fallback.close()  # the link is the runtime's; it closes it


def counter_store(settings: Settings, link: RedisLink | None) -> CounterStore:
    """Redis counters when the runtime has a Redis link, diskcache otherwise."""
    if link is not None:
        return RedisCounterStore(link)
    return DiskCounterStore(settings.cache_dir / "ratelimit")
