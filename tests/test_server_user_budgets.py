"""Budgets an operator stores per user (`cozy users set-budget`), applied by a running
server within its auth cache time, with no restart; on SQLite and on PostgreSQL.

The server is the real app on uvicorn, the CLI a real `cozy` process against the same
database, the client the official openai SDK; only the model is fake."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import sqlalchemy as sa
from helpers import cozy, write_engines
from server_fixtures import Served, ServerThread, make_keys

from cozy.core.errors import NotFoundError, UsageError
from cozy.server.app import create_app
from cozy.server.config import ServerSettings
from cozy.server.counters import MemoryCounterStore
from cozy.server.ratelimit import Budget, Limits, QuotaExceeded, RateLimiter
from cozy.settings import Settings
from cozy.storage.store import Store
from cozy.storage.users import BudgetOverride, Users, user_budgets

HI = [{"role": "user", "content": "hi"}]
CACHE = 1.0  # COZY_SERVER_AUTH_CACHE_SECONDS for these servers


@pytest.fixture
def served(
    cozy_home: Path, fake_model: Any, db_url: str
) -> Iterator[tuple[Served, dict[str, str]]]:
    """The server on `db_url` with a 1 s auth cache; and the env for `cozy` commands."""
    write_engines(cozy_home, fake_model.url)
    pg = not db_url.startswith("sqlite")
    settings = Settings(
        home=cozy_home, config=cozy_home / "engines.yaml", database_url=db_url if pg else None
    )
    server = ServerSettings(
        rate_limit_rpm=0,
        rate_limit_tpm=0,
        ip_rate_limit_rpm=0,
        auth_cache_seconds=CACHE,
        budgets={"user": {"tokens_day": 100_000}},
    )
    keys = make_keys(settings)
    thread = ServerThread(create_app(settings, server)).start()
    env = {"COZY_HOME": str(cozy_home), "COZY_CONFIG": str(cozy_home / "engines.yaml")}
    if pg:
        env["COZY_DATABASE_URL"] = db_url
    try:
        yield Served(thread.url, cozy_home, settings, server, keys, fake_model), env
    finally:
        thread.stop()


def _ask(client: openai.OpenAI) -> str | None:
    done = client.chat.completions.create(model="cozy", messages=HI, max_tokens=10)  # type: ignore[arg-type]
    return done.choices[0].message.content


def test_a_stored_budget_applies_to_a_running_server_and_clears(
    served: tuple[Served, dict[str, str]],
) -> None:
    s, env = served
    alice = openai.OpenAI(base_url=s.base_url, api_key=s.keys["alice"], max_retries=0)
    bob = openai.OpenAI(base_url=s.base_url, api_key=s.keys["bob"], max_retries=0)
    assert _ask(alice)

    # a day budget of 1 token: any request (~69 tokens reserved) is past it
    out = cozy("users", "set-budget", "alice", "--tokens-day", "1", env=env)
    assert out.returncode == 0, out.stderr
    assert "tokens_day=1" in out.stderr and "COZY_SERVER_AUTH_CACHE_SECONDS" in out.stderr
    listed = json.loads(cozy("users", "list", "--json", env=env).stdout)
    mine = {u["id"]: u["budget"] for u in listed}
    assert mine["alice"] == {
        "tokens_day": 1,
        "tokens_month": None,
        "usd_day": None,
        "usd_month": None,
    }
    assert mine["bob"] is None
    assert "alice\tuser\tactive\ttokens_day=1" in cozy("users", "list", env=env).stdout

    time.sleep(CACHE + 0.2)  # the cached principal has expired: the next request re-reads
    with pytest.raises(openai.RateLimitError) as exc:
        _ask(alice)
    err: Any = exc.value.body
    assert err["code"] == "insufficient_quota" and err["type"] == "insufficient_quota"
    assert "of 1 tokens used" in err["message"]
    assert "cozy users set-budget alice --tokens-day N" in str(exc.value)
    assert int(exc.value.response.headers["retry-after"]) >= 1
    assert _ask(bob)  # only alice's budget changed

    async def async_ask() -> str | None:
        async with openai.AsyncOpenAI(
            base_url=s.base_url, api_key=s.keys["alice"], max_retries=0
        ) as c:
            done = await c.chat.completions.create(model="cozy", messages=HI, max_tokens=10)  # type: ignore[arg-type]
            return done.choices[0].message.content

    with pytest.raises(openai.RateLimitError):
        asyncio.run(async_ask())

    # 0 turns the day budget off for her (the server's default of 100,000 included)
    assert cozy("users", "set-budget", "alice", "--tokens-day", "0", env=env).returncode == 0
    time.sleep(CACHE + 0.2)
    assert asyncio.run(async_ask())

    # --clear: back to the server's budgets (100,000 a day): accepted again
    assert cozy("users", "set-budget", "alice", "--tokens-day", "1", env=env).returncode == 0
    time.sleep(CACHE + 0.2)
    with pytest.raises(openai.RateLimitError):
        _ask(alice)
    out = cozy("users", "set-budget", "alice", "--clear", env=env)
    assert out.returncode == 0 and "the server's budgets" in out.stderr, out.stderr
    time.sleep(CACHE + 0.2)
    assert _ask(alice)
    assert json.loads(cozy("users", "list", "--json", env=env).stdout)[0]["budget"] is None


def test_set_budget_refuses_bad_input(served: tuple[Served, dict[str, str]]) -> None:
    _, env = served
    missing = cozy("users", "set-budget", "zed", "--tokens-day", "5", env=env)
    assert missing.returncode == 2 and "cozy users list" in missing.stderr
    nothing = cozy("users", "set-budget", "alice", env=env)
    assert nothing.returncode == 2 and "--tokens-day" in nothing.stderr
    both = cozy("users", "set-budget", "alice", "--clear", "--usd-day", "1", env=env)
    assert both.returncode == 2 and "--clear" in both.stderr
    negative = cozy("users", "set-budget", "alice", "--usd-month", "-1", env=env)
    assert negative.returncode == 2 and "--usd-month" in negative.stderr
    assert json.loads(cozy("users", "list", "--json", env=env).stdout)[0]["budget"] is None


def test_the_admin_route_sets_and_drops_a_budget(served: tuple[Served, dict[str, str]]) -> None:
    s, env = served
    url = s.base_url + "/users/alice/budget"
    alice = openai.OpenAI(base_url=s.base_url, api_key=s.keys["alice"], max_retries=0)
    assert _ask(alice)
    put = httpx.put(url, json={"tokens_day": 1, "usd_month": 0}, headers=s.headers("root"))
    assert put.status_code == 200, put.text
    stored = {"tokens_day": 1, "tokens_month": None, "usd_day": None, "usd_month": 0.0}
    assert put.json() == {"object": "user.budget", "user": "alice", "budget": stored}
    assert httpx.get(url, headers=s.headers("root")).json()["budget"] == stored
    listed = json.loads(cozy("users", "list", "--json", env=env).stdout)
    assert listed[0]["budget"] == stored  # the CLI reads what the route stored
    time.sleep(CACHE + 0.2)
    with pytest.raises(openai.RateLimitError) as exc:
        _ask(alice)
    assert exc.value.body["code"] == "insufficient_quota"  # type: ignore[index]

    refusals = [
        (httpx.put(url, json={"tokens_day": 5}, headers=s.headers("bob")), 403),
        (httpx.put(url, json={"tokens_day": 5}), 401),
        (httpx.put(s.base_url + "/users/zed/budget", json={}, headers=s.headers("root")), 404),
        (httpx.put(url, json={"tokens_day": -5}, headers=s.headers("root")), 400),
        (httpx.put(url, json={"tokens_year": 5}, headers=s.headers("root")), 400),
        (httpx.delete(s.base_url + "/users/zed/budget", headers=s.headers("root")), 404),
    ]
    for r, status in refusals:
        assert r.status_code == status, (status, r.text)
        assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    assert "cozy users list" in refusals[2][0].text  # the unknown user's fix

    dropped = httpx.delete(url, headers=s.headers("root"))
    assert dropped.status_code == 200 and dropped.json()["budget"] is None, dropped.text
    time.sleep(CACHE + 0.2)
    assert _ask(alice)


async def test_stored_budgets_merge_and_clear_in_the_database(db_url: str) -> None:
    store = await Store.open(db_url)
    try:
        await store.ensure_user("alice")
        users = Users(store)
        row = await users.set_budget("alice", tokens_day=1000, usd_month=2.5)
        assert row.budget == BudgetOverride(tokens_day=1000, usd_month=2.5)
        row = await users.set_budget("alice", tokens_month=0, tokens_day=None)  # merged
        assert row.budget == BudgetOverride(1000, 0, None, 2.5)
        assert row.budget.describe() == "tokens_day=1000 tokens_month=none usd_month=2.5"
        assert [(r.id, r.budget) for r in await users.list()] == [("alice", row.budget)]
        assert (await users.clear_budget("alice")).budget is None
        assert (await users.get("alice")) is not None
        with pytest.raises(NotFoundError, match="no user 'zed'"):
            await users.set_budget("zed", tokens_day=1)
        with pytest.raises(UsageError, match="negative"):
            await users.set_budget("alice", usd_day=-1)
        await users.set_budget("alice", tokens_day=7)
    finally:
        await store.close()

    # a database from before the step: the table is made by reopening (migration 0013)
    from cozy.storage.db import create_engine
    from cozy.storage.schema import schema_migrations

    engine = create_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text("DROP TABLE user_budgets"))
            await conn.execute(
                sa.delete(schema_migrations).where(schema_migrations.c.name == "0013_user_budgets")
            )
    finally:
        await engine.dispose()
    store = await Store.open(db_url)
    try:
        assert "0013_user_budgets" in (await store.migration_status())["applied"]
        assert (await store.read(sa.select(sa.func.count()).select_from(user_budgets))) == [(0,)]
        assert (await Users(store).get("alice")) is not None
    finally:
        await store.close()


async def test_precedence_stored_over_named_user_over_default() -> None:
    limits = Limits(
        rpm=0,
        tpm=0,
        ip_rpm=0,
        user_budget=Budget(tokens_day=150, usd_month=1.0),
        user_budgets={"alice": Budget(tokens_day=100_000, usd_month=1.0)},
    )
    limiter = RateLimiter(MemoryCounterStore(), limits)

    def day_limit(user: str) -> int | None:
        meters = {m.name: m.limit for m in limiter._meters_of(f"user:{user}")}
        return meters.get("tokens today")

    assert (day_limit("alice"), day_limit("bob")) == (100_000, 150)
    limiter.use_stored_budget("alice", BudgetOverride(tokens_day=50))
    limiter.use_stored_budget("bob", BudgetOverride(usd_day=3.0))  # tokens_day not stored
    assert (day_limit("alice"), day_limit("bob")) == (50, 150)
    bob = {m.name: m.limit for m in limiter._meters_of("user:bob")}
    assert bob["spend today"] == 3_000_000 and bob["spend this month"] == 1_000_000
    with pytest.raises(QuotaExceeded, match="cozy users set-budget alice --tokens-day N"):
        await limiter.reserve(["user:alice"], 60)
    limiter.use_stored_budget("alice", BudgetOverride(tokens_day=0))  # none for her
    assert day_limit("alice") is None
    await limiter.reserve(["user:alice"], 10_000_000)
    limiter.use_stored_budget("alice", None)  # cleared: COZY_SERVER_BUDGETS users.alice
    limiter.use_stored_budget("bob", None)  # cleared: the default
    assert (day_limit("alice"), day_limit("bob")) == (100_000, 150)


def test_an_older_read_does_not_switch_a_budget_back() -> None:
    """Two keys of one user are cached apart: the one still holding the previous read
    must not undo what the newer read applied."""
    limiter = RateLimiter(MemoryCounterStore(), Limits(user_budget=Budget(tokens_day=150)))

    def day_limit() -> int | None:
        return {m.name: m.limit for m in limiter._meters_of("user:alice")}.get("tokens today")

    old, new = BudgetOverride(tokens_day=10), BudgetOverride(tokens_day=20)
    limiter.use_stored_budget("alice", old, read_at=1.0)
    limiter.use_stored_budget("alice", new, read_at=2.0)  # key A re-read it
    limiter.use_stored_budget("alice", old, read_at=1.0)  # key B's cached principal
    assert day_limit() == 20
    limiter.use_stored_budget("alice", None, read_at=3.0)  # cleared, read by key A
    limiter.use_stored_budget("alice", new, read_at=2.0)  # key B, older still
    assert day_limit() == 150
    limiter.use_stored_budget("alice", old, read_at=4.0)  # set again, a newer read
    assert day_limit() == 10
