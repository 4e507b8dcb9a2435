"""Two `cozy serve` instances on different ports sharing the real PostgreSQL and Redis.

Each instance has its own COZY_HOME (nothing shared on local disk); only the model is
faked. API keys made once work on both; sessions, rate limits and jobs are shared.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from helpers import clear_of_minute_boundary, write_engines
from pg_redis_helpers import Instance, cli, cozy_env, pg_database, redis_db

from cozy.storage.db import create_engine
from cozy.testing import FakeModelServer

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

RPM = 8
EXTRA = (
    "memory: {provider: local, timeout: 5}\nprofile: {provider: none}\n"
    "knowledge: {provider: none}\n"
)


@dataclass
class Cluster:
    pg: str
    redis: str
    a: Instance
    b: Instance
    env: dict[str, str]

    def key(self, user: str) -> str:
        res = cli(self.env, "keys", "create", "--user", user)
        assert res.returncode == 0, res.stderr
        return res.stdout.strip()

    def client(self, inst: Instance, key: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=inst.url + "/v1", api_key=key, max_retries=0)

    def sql(self, stmt: str) -> list[tuple[Any, ...]]:
        async def go() -> list[tuple[Any, ...]]:
            engine = create_engine(self.pg)
            try:
                async with engine.connect() as conn:
                    return [tuple(r) for r in (await conn.exec_driver_sql(stmt)).fetchall()]
            finally:
                await engine.dispose()

        return asyncio.run(go())


def _instance_env(root: Path, name: str, fake_url: str, pg: str, redis: str) -> dict[str, str]:
    home = root / name
    home.mkdir(parents=True, exist_ok=True)
    write_engines(home, fake_url, EXTRA)
    return cozy_env(
        home,
        COZY_DATABASE_URL=pg,
        COZY_REDIS_URL=redis,
        COZY_SERVER_RATE_LIMIT_RPM=str(RPM),
        COZY_SERVER_RATE_LIMIT_TPM="0",
        COZY_SERVER_IP_RATE_LIMIT_RPM="0",
    )


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, fake_model_session: FakeModelServer
) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("cluster")
    with pg_database() as pg, redis_db(11) as redis:
        env_a = _instance_env(root, "a", fake_model_session.url, pg, redis)
        env_b = _instance_env(root, "b", fake_model_session.url, pg, redis)
        assert cli(env_a, "migrate").returncode == 0
        a, b = Instance(env_a).start(), Instance(env_b).start()
        try:
            yield Cluster(pg, redis, a, b, env_a)
        finally:
            a.stop()
            b.stop()


def test_session_made_on_one_is_read_on_the_other(
    cluster: Cluster, fake_model: FakeModelServer
) -> None:
    key = cluster.key("alice")
    fake_model.queue_reply("Lisbon is lovely in spring.")
    raw = cluster.client(cluster.a, key).chat.completions.with_raw_response.create(
        model="cozy/assistant", messages=[{"role": "user", "content": "Tell me about Lisbon"}]
    )
    sid = raw.headers["x-cozy-session"]
    auth = {"Authorization": f"Bearer {key}"}
    got = httpx.get(f"{cluster.b.url}/v1/chat/sessions/{sid}/messages", headers=auth).json()
    assert [(m["role"], m["content"]) for m in got["data"]] == [
        ("user", "Tell me about Lisbon"),
        ("assistant", "Lisbon is lovely in spring."),
    ]
    made = httpx.post(
        f"{cluster.b.url}/v1/chat/sessions", json={"title": "from b"}, headers=auth
    ).json()
    listed = httpx.get(f"{cluster.a.url}/v1/chat/sessions", headers=auth).json()
    assert made["id"] in {s["id"] for s in listed["data"]}
    ready = httpx.get(cluster.a.url + "/ready").json()
    assert ready["checks"]["redis"]["ok"] and "shared" in ready["checks"]["redis"]["detail"]


def test_rate_limit_holds_across_both(cluster: Cluster) -> None:
    key = cluster.key("bob")
    auth = {"Authorization": f"Bearer {key}"}
    codes = []
    # a window boundary falling mid-loop restarts the count: no request would be over
    clear_of_minute_boundary()
    for i in range(RPM + 2):
        inst = cluster.a if i % 2 == 0 else cluster.b
        codes.append(httpx.get(f"{inst.url}/v1/chat/sessions", headers=auth).status_code)
    assert codes[:RPM].count(200) >= RPM - 1 and 429 in codes, codes
    limited = httpx.get(f"{cluster.b.url}/v1/chat/sessions", headers=auth)
    if limited.status_code == 429:
        assert int(limited.headers["retry-after"]) >= 1
    other = cluster.key("bob2")  # another principal is not affected
    ok = httpx.get(
        f"{cluster.a.url}/v1/chat/sessions", headers={"Authorization": f"Bearer {other}"}
    )
    assert ok.status_code == 200


def test_jobs_run_exactly_once_with_both_workers(
    cluster: Cluster, fake_model: FakeModelServer
) -> None:
    key = cluster.key("carol")
    fake_model.add_rule(
        user_contains="New conversation",
        json={"operations": [{"op": "add", "text": "The user keeps bees"}]},
    )
    turns = 6
    for i in range(turns):
        inst = cluster.a if i % 2 == 0 else cluster.b
        cluster.client(inst, key).chat.completions.create(
            model="cozy/assistant", messages=[{"role": "user", "content": f"bees fact {i}"}]
        )
    deadline = time.monotonic() + 60
    while True:
        rows = cluster.sql(
            "SELECT kind, status, attempts, locked_by, last_error FROM jobs WHERE user_id = 'carol'"
        )
        if len(rows) == 2 * turns and all(r[1] == "done" for r in rows):
            break
        assert time.monotonic() < deadline, [r for r in rows if r[1] != "done"] or len(rows)
        time.sleep(0.2)
    assert all(r[2] == 1 for r in rows), rows  # each job was claimed and run once
    # carol's only: the module's instances keep running jobs queued by earlier tests
    extraction = [
        r
        for r in fake_model.chat_requests()
        if "New conversation" in str(r.body) and "bees fact" in str(r.body)
    ]
    assert len(extraction) == turns  # one model call per extract job, never two
    turn_rows = cluster.sql(
        "SELECT text, count(*) FROM memories WHERE user_id = 'carol' AND kind = 'turn' "
        "GROUP BY text"
    )
    assert sorted(turn_rows) == sorted((f"bees fact {i}", 1) for i in range(turns))


def test_killing_one_mid_stream_loses_no_committed_message(
    cluster: Cluster, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    key = cluster.key("dave")
    victim = Instance(cluster.env).start()  # a third instance we are allowed to kill
    try:
        fake_model.queue_reply("first answer")
        raw = cluster.client(victim, key).chat.completions.with_raw_response.create(
            model="cozy/assistant", messages=[{"role": "user", "content": "first question"}]
        )
        sid = raw.headers["x-cozy-session"]
        fake_model.tokens_per_second = 20
        fake_model.queue_reply(" ".join(f"w{i}" for i in range(200)))
        got: list[str] = []

        def consume() -> None:
            try:
                stream = cluster.client(victim, key).chat.completions.create(
                    model="cozy/assistant",
                    messages=[{"role": "user", "content": "second question"}],
                    stream=True,
                    extra_headers={"x-cozy-session": sid},
                )
                for chunk in stream:
                    if chunk.choices:
                        got.append(chunk.choices[0].delta.content or "")
            except (openai.APIError, httpx.HTTPError):
                pass  # the instance died under us

        t = threading.Thread(target=consume)
        t.start()
        deadline = time.monotonic() + 20
        while len(got) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(got) >= 5
        victim.kill()  # SIGKILL: no graceful shutdown
        t.join(20)
    finally:
        fake_model.tokens_per_second = None
        victim.stop()
    auth = {"Authorization": f"Bearer {key}"}
    msgs = httpx.get(f"{cluster.b.url}/v1/chat/sessions/{sid}/messages", headers=auth).json()
    seen = [(m["role"], m["content"]) for m in msgs["data"]]
    assert seen[:3] == [
        ("user", "first question"),
        ("assistant", "first answer"),
        ("user", "second question"),  # committed before the stream began
    ]
    fake_model.queue_reply("third answer")
    cont = cluster.client(cluster.a, key).chat.completions.create(
        model="cozy/assistant",
        messages=[{"role": "user", "content": "third question"}],
        extra_headers={"x-cozy-session": sid},
    )
    assert cont.choices[0].message.content == "third answer"
    history = fake_model.turn_requests()[-1].body
    assert "first answer" in str(history)  # the other instance continues the session
