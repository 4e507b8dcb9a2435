"""Storage deadlines against reality: the real PostgreSQL and Redis behind a TCP proxy
that freezes (accepts, holds every byte, never answers; no reset, no close), as a hung
host does. Requests get a 503 within the configured timeouts, or are answered without
the optional Redis, and everything recovers when traffic moves again."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers import write_engines
from pg_redis_helpers import Instance, Proxy, cli, cozy_env, pg_database, redis_db

from cozy.testing import FakeModelServer

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

EXTRA = "memory: {provider: none}\nprofile: {provider: none}\nknowledge: {provider: none}\n"
SLACK = 6.0  # generous: a loaded 2-core box; the bound (not minutes) is what is tested


@pytest.fixture(scope="module")
def services() -> Iterator[tuple[str, str]]:
    with pg_database() as pg, redis_db(12) as redis:
        yield pg, redis


def _env(home: Path, fake: FakeModelServer, pg: str, redis: str) -> dict[str, str]:
    write_engines(home, fake.url, EXTRA)
    return cozy_env(
        home,
        COZY_DATABASE_URL=pg,
        COZY_REDIS_URL=redis,
        COZY_SERVER_RATE_LIMIT_RPM="1000",
        COZY_SERVER_IP_RATE_LIMIT_RPM="0",
        COZY_DB_CONNECT_TIMEOUT="2",
        COZY_DB_STATEMENT_TIMEOUT="2",
    )


def _timed(method: str, url: str, **kw: object) -> tuple[int, float, str]:
    started = time.monotonic()
    try:
        res = httpx.request(method, url, timeout=120, **kw)  # type: ignore[arg-type]
        return res.status_code, time.monotonic() - started, res.text
    except httpx.HTTPError as exc:
        return -1, time.monotonic() - started, repr(exc)


def test_frozen_postgres_answers_503_within_seconds_and_recovers(
    services: tuple[str, str], cozy_home: Path, fake_model: FakeModelServer
) -> None:
    pg, redis = services
    proxy = Proxy("127.0.0.1", 5432)
    env = _env(cozy_home, fake_model, pg.replace(":5432/", f":{proxy.port}/"), redis)
    key = cli(env, "keys", "create", "--user", "gus").stdout.strip()
    inst = Instance(env).start()
    auth = {"Authorization": f"Bearer {key}"}
    chat = {"model": "cozy/assistant", "messages": [{"role": "user", "content": "hi"}]}
    try:
        sessions = f"{inst.url}/v1/chat/sessions"
        assert _timed("GET", sessions, headers=auth)[0] == 200
        proxy.freeze()
        for method, url, kw in (
            ("GET", sessions, {"headers": auth}),
            ("POST", f"{inst.url}/v1/chat/completions", {"headers": auth, "json": chat}),
            ("GET", f"{inst.url}/ready", {}),
        ):
            status, took, text = _timed(method, url, **kw)
            assert status == 503, (url, status, text)
            assert took < 2 * 2 + SLACK, (url, took)  # pre-ping + statement at most
            assert "Traceback" not in text
        assert "did not answer in time" in _timed("GET", sessions, headers=auth)[2]
        proxy.thaw()
        deadline = time.monotonic() + 60
        while _timed("GET", sessions, headers=auth)[0] != 200:
            assert time.monotonic() < deadline, "no recovery after Postgres came back"
            time.sleep(0.2)
        fake_model.queue_reply("back again")
        status, _, text = _timed("POST", f"{inst.url}/v1/chat/completions", headers=auth, json=chat)
        assert status == 200 and "back again" in text
        assert _timed("GET", f"{inst.url}/ready")[0] == 200
    finally:
        inst.stop()
        proxy.close()


def test_frozen_redis_requests_still_answered_within_bound(
    services: tuple[str, str], cozy_home: Path, fake_model: FakeModelServer
) -> None:
    pg, redis = services
    proxy = Proxy("127.0.0.1", 6379)
    env = _env(cozy_home, fake_model, pg, redis.replace(":6379/", f":{proxy.port}/"))
    key = cli(env, "keys", "create", "--user", "hal").stdout.strip()
    inst = Instance(env).start()
    auth = {"Authorization": f"Bearer {key}"}
    chat = {"model": "cozy/assistant", "messages": [{"role": "user", "content": "hi"}]}
    try:
        completions = f"{inst.url}/v1/chat/completions"
        assert _timed("POST", completions, headers=auth, json=chat)[0] == 200
        proxy.freeze()
        import concurrent.futures

        with concurrent.futures.ThreadPoolExecutor(20) as pool:
            results = list(
                pool.map(lambda _: _timed("POST", completions, headers=auth, json=chat), range(40))
            )
        assert all(status == 200 for status, _, _ in results), results[:3]
        slowest = max(took for _, took, _ in results)
        assert slowest < 1.0 + SLACK, slowest  # one link timeout, not one per call
        status, _, text = _timed("GET", f"{inst.url}/ready")
        assert status == 200 and "DEGRADED" in text, text  # optional: degraded, still ready
        proxy.thaw()
        deadline = time.monotonic() + 30
        while "DEGRADED" in _timed("GET", f"{inst.url}/ready")[2]:
            assert time.monotonic() < deadline, "Redis never came back"
            time.sleep(0.3)
    finally:
        inst.stop()
        proxy.close()
