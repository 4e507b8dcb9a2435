"""Freshness check before a search, side by side in one run: the scope's version read
from Postgres (no Redis, or Redis down) vs the Redis change token (cached version kept).
Prints a table; asserts nothing.

    .venv/bin/python bench/bench_scope_versions.py [--reads 2000]

Needs PostgreSQL at 127.0.0.1:5432 (db `test`, trust) and Redis at 127.0.0.1:6379; a
fresh database is created and dropped, Redis db 15 is flushed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid

PG_ADMIN = os.environ.get("COZY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = "redis://127.0.0.1:6379/15"


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


async def run(reads: int) -> None:
    import asyncpg
    import redis

    from cozy.engines.memory.repo import MemoryRepo
    from cozy.storage.redis_cache import RedisLink
    from cozy.storage.scope_versions import ScopeVersions
    from cozy.storage.store import Store

    name = f"cozy_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    redis.Redis.from_url(REDIS).flushdb()
    store = await Store.open(PG_ADMIN.rsplit("/", 1)[0] + "/" + name)
    link = RedisLink(REDIS)
    try:
        repo = MemoryRepo(store)
        await repo.write("u", lambda conn: asyncio.sleep(0))  # version 1
        db_only = ScopeVersions("memory", repo.version)  # ttl 0: the DB on every read
        with_redis = ScopeVersions("memory", repo.version, link=lambda: link)
        times: dict[str, list[float]] = {"database counter": [], "redis token": []}
        for _ in range(reads):
            for label, versions in (("database counter", db_only), ("redis token", with_redis)):
                t = time.perf_counter()
                await versions.get("u")
                times[label].append((time.perf_counter() - t) * 1000)
        print(f"\nversion check before a search ({reads} reads each, alternating)")
        print(f"{'path':>16}  {'p50 ms':>7}  {'p99 ms':>7}  db reads")
        for label, versions in (("database counter", db_only), ("redis token", with_redis)):
            ts = times[label]
            print(f"{label:>16}  {pct(ts, 50):7.3f}  {pct(ts, 99):7.3f}  {versions.db_reads}")
        print(f"load average: {os.getloadavg()}")
    finally:
        link.close()
        await store.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reads", type=int, default=2000)
    asyncio.run(run(parser.parse_args().reads))


if __name__ == "__main__":
    main()
