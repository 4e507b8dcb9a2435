"""`cozy export` / `cozy import`: a populated local SQLite home moved into the real
PostgreSQL without loss (every table compared row by row), then used there."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from helpers import collect, opened, req, running, write_engines
from pg_redis_helpers import cli, cozy_env, pg_database

from cozy.core.inputs import Fragment
from cozy.core.types import Caller
from cozy.settings import Settings
from cozy.storage.db import create_engine
from cozy.storage.schema import metadata
from cozy.storage.transfer import _known_tables
from cozy.testing import FakeModelServer

pytestmark = pytest.mark.postgres


def engines_yaml(fake: FakeModelServer) -> str:
    return (
        "memory: {provider: local, timeout: 5}\n"
        "profile: {provider: local, timeout: 5, min_chars: 10, idle_seconds: 600}\n"
        "knowledge: {provider: local, timeout: 5}\n"
        f"embed: {{provider: openai, base_url: '{fake.url}/v1', model: fake-embed, "
        "api_key: test}\n"
    )


async def populate(home: Path, fake: FakeModelServer) -> None:
    fake.add_rule(
        user_contains="New conversation",
        json={"operations": [{"op": "add", "text": "The user's cat is called Miso"}]},
    )
    fake.add_rule(
        user_contains="New messages from the user",
        json={"slots": [{"topic": "basic_info", "slot": "name", "value": "Ada"}]},
    )
    async with running(home, fake.url, engines_yaml(fake)) as rt:
        for user, prompt in (("local", "My cat Miso ignores me"), ("ada", "I'm Ada, hi ünï ✓")):
            await collect(rt.orchestrator.run(req(prompt, caller=Caller(user_id=user))))
        plan = Fragment("plan.md", "ship on Friday ✓\n")  # kept once, linked from the question
        await collect(
            rt.orchestrator.run(req("when?", caller=Caller(user_id="ada"), fragments=[plan]))
        )
        gone = await rt.store.create_session("local", "assistant", title="to delete")
        await rt.store.delete_session(gone.id, "local")
        knowledge = rt.engines["knowledge"]
        await knowledge.add_knowledge(  # type: ignore[attr-defined]
            "# Boiler\n\nThe boiler manual says: bleed the radiators every autumn.",
            user_id="local",
            collection="house",
            source="boiler.md",
        )
        await knowledge.add_knowledge(  # type: ignore[attr-defined]
            "# Garden\n\nPrune the apple tree in late winter.",
            user_id="local",
            collection="house",
            source="garden.md",
        )
        stats = await rt.drain_jobs()
        assert stats.failed == 0


def _dump(url: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of every cozy table, in primary-key order."""
    _known_tables()

    async def go() -> dict[str, list[dict[str, Any]]]:
        engine = create_engine(url)
        out: dict[str, list[dict[str, Any]]] = {}
        try:
            async with engine.connect() as conn:
                for table in metadata.sorted_tables:
                    if table.name == "schema_migrations":
                        continue
                    pk = list(table.primary_key.columns)
                    rows = (await conn.execute(sa.select(table).order_by(*pk))).fetchall()
                    out[table.name] = [dict(r._mapping) for r in rows]
        finally:
            await engine.dispose()
        return out

    return asyncio.run(go())


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with pg_database() as url:
        yield url


def test_export_import_round_trip(
    pg_url: str, cozy_home: Path, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    asyncio.run(populate(cozy_home, fake_model))
    local = f"sqlite+aiosqlite:///{cozy_home / 'cozy.db'}"
    before = _dump(local)
    for table in ("users", "sessions", "messages", "memories", "profile_slots"):
        assert before[table], f"{table} was not populated"
    for table in ("knowledge_documents", "knowledge_chunks", "jobs", "fragments"):
        assert before[table], f"{table} was not populated"
    assert any(m["embedding"] for m in before["memories"])
    assert any(c["embedding"] for c in before["knowledge_chunks"])
    assert any(s["deleted_at"] for s in before["sessions"])
    assert [r["source"] for r in before["message_fragments"]] == ["plan.md"]

    out = tmp_path / "home.jsonl.gz"
    res = cli(cozy_env(cozy_home), "export", str(out), "--json")
    assert res.returncode == 0, res.stderr
    exported = json.loads(res.stdout)
    assert exported["rows"] == sum(len(v) for v in before.values())

    target = cozy_env(cozy_home, COZY_DATABASE_URL=pg_url)
    res = cli(target, "import", str(out), "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["rows"] == exported["rows"]
    after = _dump(pg_url)
    for table, rows in before.items():
        assert after[table] == rows, f"{table} differs after import"

    # a second import into the now full database is refused, --merge keeps it as is
    res = cli(target, "import", str(out))
    assert res.returncode == 2 and "--merge" in res.stderr and "already has data" in res.stderr
    res = cli(target, "import", str(out), "--merge")
    assert res.returncode == 0, res.stderr
    assert _dump(pg_url) == after

    # the moved data is used on Postgres: memory search, history, new chunk ids
    (tmp_path / "pg-home").mkdir()
    write_engines(tmp_path / "pg-home", fake_model.url, engines_yaml(fake_model))
    asyncio.run(use_on_postgres(pg_url, tmp_path / "pg-home", fake_model))


async def use_on_postgres(url: str, home: Path, fake: FakeModelServer) -> None:
    async with opened(Settings(home=home, database_url=url)) as rt:
        memory = rt.engines["memory"]
        hits = await memory.search_memories("cat Miso", user_id="local")  # type: ignore[attr-defined]
        assert any("Miso" in h.text for h in hits)
        sessions = await rt.store.list_sessions("ada")  # newest first
        msgs = await rt.store.list_messages(sessions[1].id)
        assert msgs[0].content == "I'm Ada, hi ünï ✓"
        msgs = await rt.store.list_messages(sessions[0].id)  # read back whole
        assert msgs[0].content == "plan.md:\n```\nship on Friday ✓\n```\n\nwhen?"
        knowledge = rt.engines["knowledge"]
        await knowledge.add_knowledge(  # type: ignore[attr-defined]
            "# Car\n\nThe car needs new tyres.",
            user_id="local",
            collection="house",
            source="car.md",
        )  # chunk ids continue after the imported ones (sequence moved)


def test_bad_files_are_refused_and_nothing_is_written(pg_url: str, tmp_path: Path) -> None:
    home = tmp_path / "h"
    home.mkdir()
    env = cozy_env(home, COZY_DATABASE_URL=pg_url)
    res = cli(env, "import", str(tmp_path / "missing.jsonl"))
    assert res.returncode == 2 and "cozy export" in res.stderr
    junk = tmp_path / "junk.jsonl"
    junk.write_text("hello\n")
    res = cli(env, "import", str(junk))
    assert res.returncode == 2 and "not a cozy export" in res.stderr
    damaged = tmp_path / "damaged.jsonl.gz"
    header = {"format": "cozy-export", "version": 1, "migrations": [], "tables": ["users"]}
    with gzip.open(damaged, "wt") as fh:
        fh.write(json.dumps(header) + "\n")
        fh.write(json.dumps({"t": "users", "r": {"id": "zz", "name": None, "role": "user"}}))
        fh.write("\n{broken\n")
    with pg_database() as fresh:
        env = cozy_env(home, COZY_DATABASE_URL=fresh)
        res = cli(env, "import", str(damaged), "--merge")
        assert res.returncode == 2 and "damaged.jsonl.gz:3" in res.stderr
        assert _dump(fresh)["users"] == []  # one transaction: the good line was rolled back
    newer = tmp_path / "newer.jsonl"
    newer.write_text(json.dumps({**header, "migrations": ["9999_future"]}) + "\n")
    res = cli(env, "import", str(newer))
    assert res.returncode == 2 and "newer cozy" in res.stderr
