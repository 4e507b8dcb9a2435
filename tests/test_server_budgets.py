"""Limits per user and per key, token reservations under concurrency, and budgets
(tokens and spend per day) answering 429 `insufficient_quota` until the period ends."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from helpers import clear_of_minute_boundary, write_engines
from server_fixtures import Served, ServerThread, make_keys

from cozy.server.app import create_app
from cozy.server.config import ServerSettings
from cozy.server.ratelimit import RateLimiter
from cozy.settings import Settings
from cozy.storage.api_keys import ApiKeys
from cozy.storage.store import Store
from cozy.testing import FakeModelServer

HI = [{"role": "user", "content": "hi"}]
PRICES = "  prices:\n    'ollama:fake-model': {input: 1000000, output: 1000000}\n"  # $1/token


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _start(
    home: Path, fake: FakeModelServer, extra: str = "", **opts: Any
) -> tuple[ServerThread, Served, RateLimiter]:
    write_engines(home, fake.url, extra)
    settings = Settings(home=home, config=home / "engines.yaml")
    server = ServerSettings(
        **{
            "rate_limit_rpm": 0,
            "rate_limit_tpm": 0,
            "ip_rate_limit_rpm": 0,
            "auth_cache_seconds": 0.0,
            **opts,
        }
    )
    keys = make_keys(settings)
    app = create_app(settings, server)
    thread = ServerThread(app).start()
    served = Served(thread.url, home, settings, server, keys, fake)
    return thread, served, app.state.services.limiter


@pytest.fixture
def started() -> Iterator[list[ServerThread]]:
    threads: list[ServerThread] = []
    yield threads
    for t in threads:
        t.stop()


def _second_key(s: Served, user: str) -> str:
    async def go(store: Store) -> str:
        return (await ApiKeys(store).create(user))[0]

    key: str = s.store_call(go)
    return key


def test_limits_hold_per_user_across_keys(
    cozy_home: Path, fake_model: FakeModelServer, started: list[ServerThread]
) -> None:
    thread, s, _ = _start(cozy_home, fake_model, rate_limit_rpm=100, user_rate_limit_rpm=3)
    started.append(thread)
    other = _second_key(s, "alice")
    clear_of_minute_boundary()
    one = openai.OpenAI(base_url=s.base_url, api_key=s.keys["alice"], max_retries=0)
    two = openai.OpenAI(base_url=s.base_url, api_key=other, max_retries=0)
    one.chat.completions.create(model="cozy", messages=HI)  # type: ignore[arg-type]
    one.chat.completions.create(model="cozy", messages=HI)  # type: ignore[arg-type]
    two.chat.completions.create(model="cozy", messages=HI)  # type: ignore[arg-type]
    with pytest.raises(openai.RateLimitError) as exc:  # a second key is no second allowance
        two.chat.completions.create(model="cozy", messages=HI)  # type: ignore[arg-type]
    assert "COZY_SERVER_USER_RATE_LIMIT_RPM" in str(exc.value)
    bob = openai.OpenAI(base_url=s.base_url, api_key=s.keys["bob"], max_retries=0)
    assert bob.chat.completions.create(model="cozy", messages=HI).choices  # type: ignore[arg-type]


def test_concurrent_requests_cannot_overrun_the_token_limit(
    cozy_home: Path, fake_model: FakeModelServer, started: list[ServerThread]
) -> None:
    thread, s, limiter = _start(cozy_home, fake_model, rate_limit_tpm=300)
    started.append(thread)
    clear_of_minute_boundary()
    fake_model.latency = 0.5  # all ten are in flight at once

    async def go() -> list[Any]:
        async with openai.AsyncOpenAI(
            base_url=s.base_url, api_key=s.keys["alice"], max_retries=0
        ) as c:
            calls = [
                c.chat.completions.create(model="cozy", messages=HI, max_tokens=10)  # type: ignore[arg-type]
                for _ in range(10)
            ]
            return await asyncio.gather(*calls, return_exceptions=True)

    results = asyncio.run(go())
    done = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, openai.RateLimitError)]
    assert len(done) + len(refused) == 10, results
    # each reserves ~69 tokens (prompt + personality prompt + max_tokens): at most 4 fit
    assert 1 <= len(done) <= 4 and refused, (len(done), len(refused))
    # settled: the counters hold what the model reported, no reservation left behind
    used = sum(r.usage.total_tokens for r in done)
    window = int(limiter.clock() // 60)
    key = f"rl:tok:minute:key:{_key_id(s)}:{window}"
    deadline = time.monotonic() + 10  # settled in a task just after each response
    while asyncio.run(limiter.store.get(key)) != used and time.monotonic() < deadline:
        time.sleep(0.05)
    assert asyncio.run(limiter.store.get(key)) == used
    assert used <= 300


def _key_id(s: Served) -> str:
    async def go(store: Store) -> str:
        rows = await ApiKeys(store).list("alice")
        return rows[0].id

    key_id: str = s.store_call(go)
    return key_id


def test_token_budget_per_day_is_insufficient_quota_until_midnight(
    cozy_home: Path, fake_model: FakeModelServer, started: list[ServerThread]
) -> None:
    budgets = {"user": {"tokens_day": 150}}
    thread, s, limiter = _start(cozy_home, fake_model, budgets=budgets)
    started.append(thread)
    clock = Clock()
    clock.now = (int(time.time() // 86400) + 1) * 86400 - 3600  # 23:00 UTC
    limiter.clock = clock
    c = openai.OpenAI(base_url=s.base_url, api_key=s.keys["alice"], max_retries=0)
    for _ in range(2):
        c.chat.completions.create(model="cozy", messages=HI, max_tokens=10)  # type: ignore[arg-type]
    with pytest.raises(openai.RateLimitError) as exc:
        for _ in range(3):
            c.chat.completions.create(model="cozy", messages=HI, max_tokens=10)  # type: ignore[arg-type]
    err = exc.value.body
    assert err["code"] == "insufficient_quota" and err["type"] == "insufficient_quota"  # type: ignore[index]
    assert "tokens today" in err["message"]  # type: ignore[index]
    assert 3000 <= int(exc.value.response.headers["retry-after"]) <= 3600
    # another user has their own budget
    bob = openai.OpenAI(base_url=s.base_url, api_key=s.keys["bob"], max_retries=0)
    assert bob.chat.completions.create(model="cozy", messages=HI, max_tokens=10).choices  # type: ignore[arg-type]
    with pytest.raises(openai.RateLimitError) as big:  # no max_tokens: ~1,024 are reserved
        bob.chat.completions.create(model="cozy", messages=HI)  # type: ignore[arg-type]
    assert "max_tokens" in str(big.value)
    clock.now += 3601  # the next UTC day: the budget is back

    async def again() -> str | None:
        async with openai.AsyncOpenAI(
            base_url=s.base_url, api_key=s.keys["alice"], max_retries=0
        ) as a:
            out = await a.chat.completions.create(model="cozy", messages=HI, max_tokens=10)  # type: ignore[arg-type]
            return out.choices[0].message.content

    assert asyncio.run(again())


def test_budgets_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COZY_SERVER_BUDGETS", json.dumps({"key": {"tokens_month": 9}}))
    assert ServerSettings().limits().key_budget.tokens_month == 9
    monkeypatch.setenv("COZY_SERVER_BUDGETS", json.dumps({"key": {"tokens_year": 9}}))
    with pytest.raises(ValueError, match="tokens_year"):
        ServerSettings()


def test_spend_budget_with_a_price_table(
    cozy_home: Path, fake_model: FakeModelServer, started: list[ServerThread]
) -> None:
    budgets = {"key": {"usd_day": 500}}  # $1 a token: a few requests
    thread, s, _ = _start(cozy_home, fake_model, PRICES, budgets=budgets)
    started.append(thread)
    c = openai.OpenAI(base_url=s.base_url, api_key=s.keys["alice"], max_retries=0)
    ok = 0
    with pytest.raises(openai.RateLimitError) as exc:
        for _ in range(20):
            c.chat.completions.create(model="cozy", messages=HI, max_tokens=10)  # type: ignore[arg-type]
            ok += 1
    assert 1 <= ok < 20
    assert exc.value.body["code"] == "insufficient_quota"  # type: ignore[index]
    assert "spend today" in str(exc.value) and "$" in str(exc.value)
    r = httpx.post(
        s.base_url + "/chat/completions",
        json={"model": "cozy", "messages": HI},
        headers=s.headers("alice"),
        timeout=60,
    )
    assert r.status_code == 429 and r.json()["error"]["code"] == "insufficient_quota"
    # what the server served is in `cozy usage`, per user, with its spend
    import subprocess
    import sys

    env = {**os.environ, "COZY_HOME": str(s.home), "COZY_CONFIG": str(s.home / "engines.yaml")}
    out = subprocess.run(
        [sys.executable, "-m", "cozy", "usage", "--user", "alice", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    rows = json.loads(out.stdout)
    assert [r["user"] for r in rows] == ["alice"] and rows[0]["requests"] == ok
    assert rows[0]["usd"] >= 500 - 200  # near the budget it was stopped at


def test_budget_per_user_overrides_the_default(
    cozy_home: Path, fake_model: FakeModelServer, started: list[ServerThread]
) -> None:
    # alice gets a bigger daily budget than the default, bob none at all
    budgets = {
        "user": {"tokens_day": 150},
        "users": {"alice": {"tokens_day": 100_000}, "bob": {"tokens_day": 0}},
    }
    thread, s, _ = _start(cozy_home, fake_model, budgets=budgets)
    started.append(thread)
    alice = openai.OpenAI(base_url=s.base_url, api_key=s.keys["alice"], max_retries=0)
    bob = openai.OpenAI(base_url=s.base_url, api_key=s.keys["bob"], max_retries=0)
    root = openai.OpenAI(base_url=s.base_url, api_key=s.keys["root"], max_retries=0)
    for _ in range(4):  # ~69 tokens reserved each: past the default of 150
        alice.chat.completions.create(model="cozy", messages=HI, max_tokens=10)  # type: ignore[arg-type]
    assert bob.chat.completions.create(model="cozy", messages=HI).choices  # type: ignore[arg-type]
    # root has no override: the default holds
    with pytest.raises(openai.RateLimitError) as exc:
        for _ in range(4):
            root.chat.completions.create(model="cozy", messages=HI, max_tokens=10)  # type: ignore[arg-type]
    assert exc.value.body["code"] == "insufficient_quota"  # type: ignore[index]
    # alice's own figure is the one in her refusal
    with pytest.raises(openai.RateLimitError) as big:
        alice.chat.completions.create(model="cozy", messages=HI, max_tokens=200_000)  # type: ignore[arg-type]
    assert "of 100,000 tokens" in str(big.value)
    assert "COZY_SERVER_BUDGETS (users.alice)" in str(big.value)


def test_user_budget_overrides_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "COZY_SERVER_BUDGETS",
        json.dumps({"user": {"tokens_day": 5, "usd_month": 2}, "users": {"a": {"usd_month": 0}}}),
    )
    limits = ServerSettings().limits()
    assert limits.user_budgets["a"].tokens_day == 5  # left out: the default
    assert limits.user_budgets["a"].usd_month is None  # 0: no such budget for a
    monkeypatch.setenv("COZY_SERVER_BUDGETS", json.dumps({"users": {"a": {"tokens_day": -1}}}))
    with pytest.raises(ValueError, match="tokens_day"):
        ServerSettings()
