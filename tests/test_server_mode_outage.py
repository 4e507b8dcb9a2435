"""Outages in server mode, with the real PostgreSQL and Redis behind a TCP proxy we can cut:
unreachable at start (clear message naming the URL, non-zero exit), and mid-run
(Postgres: 503 then recovery; Redis: degraded loudly, then shared again)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers import write_engines
from pg_redis_helpers import Instance, Proxy, cli, cozy_env, free_port, pg_database, redis_db

from cozy.testing import FakeModelServer

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

EXTRA = "memory: {provider: none}\nprofile: {provider: none}\nknowledge: {provider: none}\n"


@pytest.fixture(scope="module")
def services() -> Iterator[tuple[str, str]]:
    with pg_database() as pg, redis_db(13) as redis:
        yield pg, redis


def _env(home: Path, fake: FakeModelServer, pg: str, redis: str) -> dict[str, str]:
    write_engines(home, fake.url, EXTRA)
    return cozy_env(
        home,
        COZY_DATABASE_URL=pg,
        COZY_REDIS_URL=redis,
        COZY_SERVER_RATE_LIMIT_RPM="0",
        COZY_SERVER_IP_RATE_LIMIT_RPM="0",
    )


def test_unreachable_at_start_names_the_url(
    services: tuple[str, str], cozy_home: Path, fake_model: FakeModelServer
) -> None:
    pg, redis = services
    dead = free_port()
    env = _env(cozy_home, fake_model, f"postgresql://cozy:s3cret@127.0.0.1:{dead}/cozy", redis)
    res = cli(env, "serve", "--port", str(free_port()), timeout=60)
    assert res.returncode == 1
    assert f"127.0.0.1:{dead}/cozy" in res.stderr and "COZY_DATABASE_URL" in res.stderr
    assert "s3cret" not in res.stderr and "Traceback" not in res.stderr
    env = _env(cozy_home, fake_model, pg, f"redis://127.0.0.1:{dead}/0")
    res = cli(env, "serve", "--port", str(free_port()), timeout=60)
    assert res.returncode == 1
    assert f"redis://127.0.0.1:{dead}/0" in res.stderr and "COZY_REDIS_URL" in res.stderr
    assert "Traceback" not in res.stderr


def _status(url: str, headers: dict[str, str]) -> int:
    try:
        return httpx.get(url, headers=headers, timeout=20).status_code
    except httpx.HTTPError:
        return -1


def test_postgres_outage_gives_503_then_recovers(
    services: tuple[str, str], cozy_home: Path, fake_model: FakeModelServer
) -> None:
    pg, redis = services
    proxy = Proxy("127.0.0.1", 5432)
    proxied = pg.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    env = _env(cozy_home, fake_model, proxied, redis)
    key = cli(env, "keys", "create", "--user", "erin").stdout.strip()
    inst = Instance(env).start()
    try:
        auth = {"Authorization": f"Bearer {key}"}
        sessions = f"{inst.url}/v1/chat/sessions"
        assert _status(sessions, auth) == 200
        proxy.cut()
        res = httpx.get(sessions, headers=auth, timeout=20)
        assert res.status_code == 503, res.text
        assert "COZY_DATABASE_URL" in res.json()["error"]["message"]
        chat = httpx.post(
            f"{inst.url}/v1/chat/completions",
            headers=auth,
            json={"model": "cozy/assistant", "messages": [{"role": "user", "content": "hi"}]},
            timeout=20,
        )
        assert chat.status_code == 503, chat.text
        assert httpx.get(inst.url + "/ready", timeout=20).status_code == 503
        proxy.restore()
        deadline = time.monotonic() + 60  # generous: recovery on a loaded machine
        while _status(sessions, auth) != 200:
            assert time.monotonic() < deadline, "no recovery after Postgres came back"
            time.sleep(0.2)
        fake_model.queue_reply("back again")
        chat = httpx.post(
            f"{inst.url}/v1/chat/completions",
            headers=auth,
            json={"model": "cozy/assistant", "messages": [{"role": "user", "content": "hi"}]},
            timeout=20,
        )
        assert chat.status_code == 200 and "back again" in chat.text
    finally:
        inst.stop()
        proxy.close()


def test_redis_outage_degrades_loudly_then_recovers(
    services: tuple[str, str], cozy_home: Path, fake_model: FakeModelServer
) -> None:
    pg, redis = services
    proxy = Proxy("127.0.0.1", 6379)
    proxied = redis.replace("127.0.0.1:6379", f"127.0.0.1:{proxy.port}")
    env = _env(cozy_home, fake_model, pg, proxied)
    env["COZY_SERVER_RATE_LIMIT_RPM"] = "1000"
    env["COZY_LOG_LEVEL"] = "WARNING"
    key = cli(env, "keys", "create", "--user", "fay").stdout.strip()
    inst = Instance(env).start()
    try:
        auth = {"Authorization": f"Bearer {key}"}
        sessions = f"{inst.url}/v1/chat/sessions"
        assert _status(sessions, auth) == 200
        proxy.cut()
        assert _status(sessions, auth) == 200  # still serving: limits per instance now
        ready = httpx.get(inst.url + "/ready", timeout=20)
        detail = ready.json()["checks"]["redis"]["detail"]
        assert (
            ready.status_code == 200 and detail.startswith("DEGRADED") and "per-instance" in detail
        )
        proxy.restore()
        deadline = time.monotonic() + 60  # generous: recovery on a loaded machine
        while "DEGRADED" in httpx.get(inst.url + "/ready", timeout=20).text:
            assert time.monotonic() < deadline, "Redis not used again after it came back"
            time.sleep(0.2)
        assert _status(sessions, auth) == 200
    finally:
        err = inst.stderr()
        inst.stop()
        proxy.close()
    assert "REDIS UNREACHABLE" in err and "is back" in err  # loud in the log
