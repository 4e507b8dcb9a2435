"""RedisL2Cache and RedisCounterStore against the real local Redis, plus a Redis of our
own (redis-server on a free port) that we stop and start again for the outage path."""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import clear_of_minute_boundary
from pg_redis_helpers import free_port, redis_db

from cozy.core.errors import StorageUnavailable
from cozy.server.ratelimit import Limits, RateLimited, RateLimiter
from cozy.server.ratelimit_redis import RedisCounterStore
from cozy.storage.redis_cache import RedisL2Cache, RedisLink

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_db(12) as url:
        yield url


def test_cache_shared_and_bump_invalidates_everywhere(redis_url: str) -> None:
    a, b = RedisLink(redis_url), RedisLink(redis_url)  # two instances
    try:
        ca, cb = RedisL2Cache(a), RedisL2Cache(b)
        value = {"hits": [1, 2.5, "três"], "raw": b"\x00\x01"}
        ca.set("knowledge", "q1", value)
        assert cb.get("knowledge", "q1") == value
        assert cb.get("profile", "q1") is None  # namespaces are separate
        cb.bump("knowledge")  # e.g. a document changed on instance b
        assert ca.get("knowledge", "q1") is None
        ca.set("knowledge", "q1", "new")
        assert cb.get("knowledge", "q1") == "new"
        # a TTL a loaded machine cannot outlive between the two calls, then wait it out
        ca.set("profile", "short", 1, ttl=1.5)
        assert cb.get("profile", "short") == 1
        time.sleep(1.7)
        assert cb.get("profile", "short") is None  # TTL holds
        assert a.pool.max_connections == 50  # the brief's pool size is the default
        # instance a lost Redis for a while (a bump of its may be lost): when it is back,
        # every entry written before is dropped for every instance
        ca.set("knowledge", "q2", "old")
        a.failed(ConnectionError("network partition"), "test")
        a.ok()
        assert cb.get("knowledge", "q2") is None and cb.get("knowledge", "q1") is None
    finally:
        a.close()
        b.close()


def test_counters_shared_across_instances(redis_url: str) -> None:
    a, b = RedisLink(redis_url), RedisLink(redis_url)
    try:
        la = RateLimiter(RedisCounterStore(a), Limits(rpm=4, tpm=0, ip_rpm=0))
        lb = RateLimiter(RedisCounterStore(b), Limits(rpm=4, tpm=0, ip_rpm=0))
        clear_of_minute_boundary(margin=5)  # all five checks in one window
        for limiter in (la, lb, la, lb):
            limiter.check_principal("user:alice")
        with pytest.raises(RateLimited) as info:
            lb.check_principal("user:alice")
        assert info.value.retry_after >= 1
        la.check_principal("user:bob")  # per principal
        keys = [k.decode() for k in a.client.keys("cozy:rl:*")]
        assert keys and all(0 < a.client.ttl(k) <= 120 for k in keys)  # windows expire
    finally:
        a.close()
        b.close()


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


def _start_redis(port: int, procs: list[subprocess.Popen[bytes]], tmp: Path) -> None:
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--dir", str(tmp)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    procs.append(proc)
    link = RedisLink(f"redis://127.0.0.1:{port}/0")
    deadline = time.monotonic() + 10
    while True:
        try:
            link.ping()
            break
        except StorageUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    link.close()


def test_outage_degrades_loudly_and_recovers(
    own_redis: tuple[int, list[subprocess.Popen[bytes]]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    port, procs = own_redis
    url = f"redis://user:secret@127.0.0.1:{port}/0"
    link = RedisLink(url)
    with pytest.raises(StorageUnavailable) as info:  # nothing listening yet: start-up error
        link.ping()
    assert f"127.0.0.1:{port}" in str(info.value) and "secret" not in str(info.value)
    assert "COZY_REDIS_URL" in str(info.value)
    _start_redis(port, procs, tmp_path)
    link = RedisLink(f"redis://127.0.0.1:{port}/0")
    cache = RedisL2Cache(link)
    limiter = RateLimiter(RedisCounterStore(link), Limits(rpm=3, tpm=0, ip_rpm=0))
    cache.set("knowledge", "k", "v")
    limiter.check_principal("p")
    assert link.status()[0]
    procs[0].kill()  # Redis goes away mid-run
    procs[0].wait(10)
    caplog.set_level(logging.WARNING, logger="cozy.redis")
    assert cache.get("knowledge", "k") is None  # a miss, not an error
    cache.set("knowledge", "k2", "v2")  # dropped, not raised
    limiter.check_principal("p")  # per-instance counters from now on
    limiter.check_principal("p")
    limiter.check_principal("p")
    with pytest.raises(RateLimited):
        limiter.check_principal("p")  # still limited, by the instance's own counter
    ok, detail = link.status()
    assert not ok and "unreachable" in detail and "per-instance" in detail
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "REDIS UNREACHABLE" in errors[0].getMessage()  # once
    _start_redis(port, procs, tmp_path)  # back (empty: a fresh server)
    ok, detail = link.status()
    assert ok and "shared" in detail
    cache.set("knowledge", "k3", "v3")
    assert cache.get("knowledge", "k3") == "v3"
    assert any("is back" in r.getMessage() for r in caplog.records)
    link.close()
