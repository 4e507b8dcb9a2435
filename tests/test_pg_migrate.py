"""`cozy migrate` on the real PostgreSQL (and SQLite): status, up, a newer database,
a failing step rolled back whole, an unreachable server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from pg_redis_helpers import cli, cozy_env, pg_database

from cozy.core.errors import StorageError
from cozy.storage import migrations, pg_admin, pg_schema
from cozy.storage.db import create_engine
from cozy.storage.store import Store

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with pg_database() as url:
        yield url


def _run(env: dict[str, str], *args: str) -> tuple[int, dict[str, object] | None, str]:
    res = cli(env, "migrate", *args)
    data = json.loads(res.stdout) if res.stdout.strip().startswith("{") else None
    return res.returncode, data, res.stderr


async def _sql(url: str, stmt: str) -> list[tuple[object, ...]]:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            res = await conn.exec_driver_sql(stmt)
            return [tuple(r) for r in res.fetchall()] if res.returns_rows else []
    finally:
        await engine.dispose()


def test_status_then_up_on_postgres(pg_url: str, cozy_home: Path) -> None:
    env = cozy_env(cozy_home, COZY_DATABASE_URL=pg_url)
    code, data, _ = _run(env, "status", "--json")
    assert code == 0 and data is not None
    assert data["applied"] == [] and data["pending"] == migrations.known_names()
    assert data["dialect"] == "postgresql" and "postgres@" not in str(data["database"])
    code, data, _ = _run(env, "up", "--json")
    assert code == 0 and data is not None
    assert data["ran"] == migrations.known_names() and data["pending"] == []
    vectors = data["vectors"]
    assert isinstance(vectors, dict) and vectors["path"] == "portable"  # the only one on PG
    assert vectors["pgvector"] in ("absent", "available", "enabled")
    assert "; pgvector " in str(vectors["detail"])  # and why it is not used
    res = cli(env, "migrate")  # again, human output: nothing to do
    assert res.returncode == 0 and "already up to date" in res.stdout
    assert "vectors:" in res.stdout
    # the Postgres keyword indexes exist (GIN over stored tsvector columns)
    rows = asyncio.run(
        _sql(pg_url, "SELECT indexname FROM pg_indexes WHERE indexname LIKE '%tsv%'")
    )
    assert {r[0] for r in rows} == {"ix_memories_tsvcol", "ix_knowledge_chunks_tsvcol"}


def test_sqlite_up_and_bad_action(cozy_home: Path) -> None:
    env = cozy_env(cozy_home)
    code, data, _ = _run(env, "--json")
    assert code == 0 and data is not None and data["dialect"] == "sqlite"
    assert data["pending"] == [] and data["vectors"]["path"] == "local"  # type: ignore[index]
    res = cli(env, "migrate", "sideways")
    assert res.returncode == 2 and "cozy migrate status" in res.stderr


def test_newer_database_is_refused(cozy_home: Path) -> None:
    with pg_database() as url:
        env = cozy_env(cozy_home, COZY_DATABASE_URL=url)
        assert _run(env, "up")[0] == 0
        asyncio.run(
            _sql(url, "INSERT INTO schema_migrations (name, applied_at) VALUES ('9999_future', 0)")
        )
        code, data, err = _run(env, "status", "--json")
        assert code == 1 and data is not None and data["unknown"] == ["9999_future"]
        code, _, err = _run(env, "up")
        assert code == 1 and "9999_future" in err and "newer cozy" in err
        with pytest.raises(StorageError, match="9999_future"):
            asyncio.run(Store.open(url))
        res = cli(env, "sessions", "list")  # every command refuses it, not only migrate
        assert res.returncode != 0 and "9999_future" in res.stderr


def test_failing_step_is_rolled_back_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    def half(conn: sa.engine.Connection) -> None:
        conn.exec_driver_sql("CREATE TABLE half_done (id int)")
        conn.exec_driver_sql("INSERT INTO half_done VALUES (1)")
        raise RuntimeError("step failed half way")

    with pg_database() as url:
        monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, ("9000_half", half)])
        with pytest.raises(RuntimeError, match="half way"):
            asyncio.run(pg_admin.upgrade(url))
        tables = asyncio.run(
            _sql(url, "SELECT tablename FROM pg_tables WHERE tablename = 'half_done'")
        )
        assert tables == []  # the step's DDL went with its transaction
        report = asyncio.run(pg_admin.status(url))
        assert report["pending"] == ["9000_half"]  # earlier steps stay applied
        monkeypatch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:-1])
        assert asyncio.run(pg_admin.status(url))["pending"] == []


def test_unreachable_postgres_names_the_url(cozy_home: Path) -> None:
    env = cozy_env(cozy_home, COZY_DATABASE_URL="postgresql://cozy:pw@127.0.0.1:1/cozy")
    res = cli(env, "migrate")
    assert res.returncode != 0
    assert "127.0.0.1:1/cozy" in res.stderr and "COZY_DATABASE_URL" in res.stderr
    assert "Traceback" not in res.stderr and "pw" not in res.stderr


def test_doctor_reports_vector_path_and_redis(pg_url: str, cozy_home: Path) -> None:
    env = cozy_env(cozy_home, COZY_DATABASE_URL=pg_url, COZY_REDIS_URL="redis://127.0.0.1:6379/14")
    res = cli(env, "doctor", "--json")
    checks = {c["name"]: c for c in json.loads(res.stdout)}
    assert checks["vectors"]["status"] == "ok"
    assert checks["vectors"]["detail"].startswith("portable: ")
    assert "pgvector" in checks["vectors"]["detail"]  # says why it is (not) used
    assert checks["redis"]["status"] == "ok" and "shared" in checks["redis"]["detail"]
    env["COZY_REDIS_URL"] = "redis://127.0.0.1:1/0"
    res = cli(env, "doctor", "--json")
    checks = {c["name"]: c for c in json.loads(res.stdout)}
    assert checks["redis"]["status"] == "warn" and "COZY_REDIS_URL" in checks["redis"]["fix"]


def test_0009_adds_turn_context_to_the_memory_tsvector() -> None:
    """A database from before step 0009 (`tsv` over the text alone) gets the context at
    weight B, in the step's transaction; the rows stay as they were."""
    with pg_database() as url:
        asyncio.run(pg_admin.upgrade(url))
        old = pg_schema.MEMORY_TSV
        for stmt in (
            "DROP INDEX ix_memories_tsvcol",
            "ALTER TABLE memories DROP COLUMN tsv",
            f"ALTER TABLE memories ADD COLUMN tsv tsvector GENERATED ALWAYS AS ({old}) STORED",
            "DELETE FROM schema_migrations WHERE name = '0009_pg_memory_context_tsv'",
            "INSERT INTO memories (id, user_id, kind, text, context, text_hash, status, "
            "created_at, updated_at) VALUES ('m1', 'u', 'turn', 'Yes, lovely!', "
            "'Did you enjoy Lisbon?', 'h', 'active', 0, 0)",
        ):
            asyncio.run(_sql(url, stmt))
        assert asyncio.run(_sql(url, "SELECT tsv::text FROM memories"))[0][0] == "'love':2 'yes':1"
        assert asyncio.run(pg_admin.upgrade(url))["ran"] == ["0009_pg_memory_context_tsv"]
        tsv = asyncio.run(_sql(url, "SELECT tsv::text FROM memories WHERE id = 'm1'"))[0][0]
        assert str(tsv) == "'enjoy':5B 'lisbon':6B 'love':2A 'yes':1A"
        storage = asyncio.run(
            _sql(
                url,
                "SELECT attstorage::text FROM pg_attribute WHERE attrelid = 'memories'::regclass "
                "AND attname = 'embedding'",
            )
        )
        assert storage == [("e",)]  # embeddings out of the row: `tsv` stays in it
