"""RedisL2Cache and RedisCounterStore against the real local Redis, plus a Redis of our
own (redis-server on a free port) that we stop and start again for the outage path."""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import clear_of_minute_boundary
from pg_redis_helpers import REDIS, Proxy, free_port, redis_db

from cozy.core.errors import StorageUnavailable
from cozy.server.ratelimit import Limits, RateLimited, RateLimiter
from cozy.server.ratelimit_redis import RedisCounterStore
from cozy.storage.redis_cache import RedisL2Cache, RedisLink

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_db(12) as url:
        yield url


async def test_cache_shared_and_bump_invalidates_everywhere(redis_url: str) -> None:
    a, b = RedisLink(redis_url), RedisLink(redis_url)  # two instances
    try:
        ca, cb = RedisL2Cache(a), RedisL2Cache(b)
        value = {"hits": [1, 2.5, "três"], "raw": b"\x00\x01"}
        await ca.set("knowledge", "q1", value)
        assert await cb.get("knowledge", "q1") == value
        assert await cb.get("profile", "q1") is None  # namespaces are separate
        await cb.bump("knowledge")  # e.g. a document changed on instance b
        assert await ca.get("knowledge", "q1") is None
        await ca.set("knowledge", "q1", "new")
        assert await cb.get("knowledge", "q1") == "new"
        # a TTL a loaded machine cannot outlive between the two calls, then wait it out
        await ca.set("profile", "short", 1, ttl=1.5)
        assert await cb.get("profile", "short") == 1
        await asyncio.sleep(1.7)
        assert await cb.get("profile", "short") is None  # TTL holds
        assert a.pool.max_connections == 50  # the brief's pool size is the default
        # instance a lost Redis for a while (a bump of its may be lost): when it is back,
        # every entry written before is dropped for every instance
        await ca.set("knowledge", "q2", "old")
        a.failed(ConnectionError("network partition"), "test")
        a.ok()
        await a.flush()  # the recovery hooks run in the background
        assert await cb.get("knowledge", "q2") is None and await cb.get("knowledge", "q1") is None
    finally:
        await a.close()
        await b.close()


async def test_counters_shared_across_instances(redis_url: str) -> None:
    a, b = RedisLink(redis_url), RedisLink(redis_url)
    try:
        la = RateLimiter(RedisCounterStore(a), Limits(rpm=4, tpm=0, ip_rpm=0))
        lb = RateLimiter(RedisCounterStore(b), Limits(rpm=4, tpm=0, ip_rpm=0))
        clear_of_minute_boundary(margin=5)  # all five checks in one window
        for limiter in (la, lb, la, lb):
            await limiter.check_principal("user:alice")
        with pytest.raises(RateLimited) as info:
            await lb.check_principal("user:alice")
        assert info.value.retry_after >= 1
        await la.check_principal("user:bob")  # per principal
        keys = [k.decode() for k in await a.client.keys("cozy:rl:*")]
        assert keys and all([0 < await a.client.ttl(k) <= 120 for k in keys])  # windows expire
    finally:
        await a.close()
        await b.close()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[int, list[subprocess.Popen[bytes]]]]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    procs: list[subprocess.Popen[bytes]] = []
    yield port, procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


async def _start_redis(port: int, procs: list[subprocess.Popen[bytes]], tmp: Path) -> None:
    proc = subprocess.Popen(  # noqa: ASYNC220 - returns at once; the loop polls below
        ["redis-server", "--port", str(port), "--save", "", "--dir", str(tmp)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    procs.append(proc)
    link = RedisLink(f"redis://127.0.0.1:{port}/0")
    deadline = time.monotonic() + 10
    while True:
        try:
            await link.ping()
            break
        except StorageUnavailable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)
    await link.close()


async def test_outage_degrades_loudly_and_recovers(
    own_redis: tuple[int, list[subprocess.Popen[bytes]]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    port, procs = own_redis
    url = f"redis://user:secret@127.0.0.1:{port}/0"
    link = RedisLink(url)
    with pytest.raises(StorageUnavailable) as info:  # nothing listening yet: start-up error
        await link.ping()
    assert f"127.0.0.1:{port}" in str(info.value) and "secret" not in str(info.value)
    assert "COZY_REDIS_URL" in str(info.value)
    await _start_redis(port, procs, tmp_path)
    link = RedisLink(f"redis://127.0.0.1:{port}/0")
    cache = RedisL2Cache(link)
    limiter = RateLimiter(RedisCounterStore(link), Limits(rpm=3, tpm=0, ip_rpm=0))
    await cache.set("knowledge", "k", "v")
    await limiter.check_principal("p")
    assert (await link.status())[0]
    procs[0].kill()  # Redis goes away mid-run
    procs[0].wait(10)
    caplog.set_level(logging.WARNING, logger="cozy.redis")
    assert await cache.get("knowledge", "k") is None  # a miss, not an error
    await cache.set("knowledge", "k2", "v2")  # dropped, not raised
    await limiter.check_principal("p")  # per-instance counters from now on
    await limiter.check_principal("p")
    await limiter.check_principal("p")
    with pytest.raises(RateLimited):
        await limiter.check_principal("p")  # still limited, by the instance's own counter
    ok, detail = await link.status()
    assert not ok and "unreachable" in detail and "per-instance" in detail
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "REDIS UNREACHABLE" in errors[0].getMessage()  # once
    await _start_redis(port, procs, tmp_path)  # back (empty: a fresh server)
    ok, detail = await link.status()
    assert ok and "shared" in detail
    await cache.set("knowledge", "k3", "v3")
    assert await cache.get("knowledge", "k3") == "v3"
    assert any("is back" in r.getMessage() for r in caplog.records)
    await link.close()


async def test_frozen_redis_costs_one_timeout_per_interval_and_never_blocks_the_loop(
    redis_url: str,
) -> None:
    """A Redis that accepts and never answers (a blackholed proxy): calls fail over to
    the fallbacks within the link's deadline, the open breaker answers the rest at
    once, and the event loop keeps ticking the whole time."""
    host, port = REDIS.split("//", 1)[1].rsplit(":", 1)
    proxy = Proxy(host, int(port))
    link = RedisLink(redis_url.replace(f"{host}:{port}", f"127.0.0.1:{proxy.port}"), retry=1.0)
    cache = RedisL2Cache(link)
    limiter = RateLimiter(RedisCounterStore(link), Limits(rpm=1000, tpm=0, ip_rpm=0))
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:  # proves the loop is free: a synchronous client stalls it
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    tick_task = asyncio.create_task(ticker())
    try:
        await cache.set("knowledge", "k", "v")
        assert await cache.get("knowledge", "k") == "v"
        proxy.freeze()
        started = time.monotonic()
        calls_before = link.calls
        results = await asyncio.gather(
            *(cache.get("knowledge", "k") for _ in range(100)),
            *(limiter.check_principal("p") for _ in range(100)),
        )
        took = time.monotonic() - started
        assert results[:100] == [None] * 100  # misses, not errors
        # the first calls in flight wait out one deadline; later ones are skipped
        assert took < link.timeout * 2 + 2.0, took
        assert not link.healthy
        sent_while_frozen = link.calls - calls_before
        # the breaker is open: the next calls never touch Redis and answer at once
        started_open = time.monotonic()
        sent = link.calls
        await asyncio.gather(*(cache.get("knowledge", "k") for _ in range(100)))
        assert link.calls == sent and link.skipped >= 100
        assert time.monotonic() - started_open < 0.5
        # one interval later: a single probe, the rest answered without a round trip
        await asyncio.sleep(1.1)
        sent = link.calls
        await asyncio.gather(*(cache.get("knowledge", "k") for _ in range(50)))
        assert link.calls - sent == 1, (link.calls - sent, sent_while_frozen)
        expected_ticks = (time.monotonic() - started) / 0.01
        assert ticks > expected_ticks * 0.3, (ticks, expected_ticks)  # loop never blocked
        proxy.thaw()
        await asyncio.sleep(1.1)
        ok, _ = await link.status()
        assert ok
        await link.flush()  # the recovery hooks run in the background
        assert await cache.get("knowledge", "k") is None  # the epoch moved on recovery
        await link.flush()
    finally:
        stop.set()
        await tick_task
        await link.close()
        proxy.close()
