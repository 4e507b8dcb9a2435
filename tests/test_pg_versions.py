"""Per-scope versions across instances on the real PostgreSQL and Redis: a write on one
runtime is seen by the other's next search at once (Redis change token), a search that
finds its token unchanged does not read the DB counter, and with Redis cut the DB
counter takes over; when Redis is back, writes made during the cut are not missed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from helpers import write_engines
from pg_redis_helpers import Proxy, pg_database, redis_db

from cozy.runtime import Runtime
from cozy.settings import Settings
from cozy.storage.scope_versions import ScopeVersions
from cozy.testing import FakeModelServer

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def _yaml(fake: FakeModelServer) -> str:
    # version_ttl 60: without Redis, b's cached memory version would hide a's writes
    return (
        "memory: {provider: local, timeout: 5, version_ttl: 60, vector_timeout: 30}\n"
        "profile: {provider: none}\n"
        "knowledge: {provider: local, timeout: 5}\n"
        f"embed: {{provider: openai, base_url: '{fake.url}/v1', model: fake-embed, "
        "api_key: test}\n"
    )


@pytest.fixture(scope="module")
def services() -> Iterator[tuple[str, str]]:
    with pg_database() as pg, redis_db(11) as redis:
        yield pg, redis


@pytest.fixture
async def two(
    services: tuple[str, str], tmp_path: Path, fake_model: FakeModelServer
) -> AsyncIterator[tuple[Runtime, Runtime, Proxy]]:
    pg, redis = services
    host_port, db = redis.removeprefix("redis://").rsplit("/", 1)
    host, port = host_port.rsplit(":", 1)
    proxy = Proxy(host, int(port))  # every instance reaches Redis through it: we can cut it
    rts: list[Runtime] = []
    try:
        for name in ("a", "b"):
            home = tmp_path / name
            home.mkdir()
            write_engines(home, fake_model.url, _yaml(fake_model))
            url = f"redis://127.0.0.1:{proxy.port}/{db}"
            rts.append(await Runtime.open(Settings(home=home, database_url=pg, redis_url=url)))
        yield rts[0], rts[1], proxy
    finally:
        for rt in rts:
            await rt.close()
        proxy.close()


def _versions(rt: Runtime, kind: str) -> ScopeVersions:
    versions: ScopeVersions = rt.engines[kind].versions  # type: ignore[attr-defined]
    return versions


async def test_memory_write_seen_at_once_and_unchanged_scope_skips_the_db(
    two: tuple[Runtime, Runtime, Proxy], fake_model: FakeModelServer
) -> None:
    a, b, _ = two
    ma, mb = a.engines["memory"], b.engines["memory"]
    vb = _versions(b, "memory")

    async def vector_ids() -> set[str]:  # b's in-process vector index answers this
        hits = await mb.search("hobby", user_id="m1", mode="vector", limit=20)  # type: ignore[attr-defined]
        return {h.id for h in hits}

    first = await ma.remember("m1", "The user bakes sourdough bread on Sundays")  # type: ignore[attr-defined]
    assert await vector_ids() == {first[0]}
    reads = vb.db_reads
    for _ in range(3):  # nothing written: the Redis token answers, not the DB
        assert await vector_ids() == {first[0]}
    assert vb.db_reads == reads and vb.fast >= 3
    second = await ma.remember("m1", "The user paddles a kayak on the lake")  # type: ignore[attr-defined]
    assert await vector_ids() == {first[0], second[0]}  # at once: no version_ttl wait
    assert vb.db_reads == reads + 1


async def test_knowledge_write_seen_at_once_and_redis_cut(
    two: tuple[Runtime, Runtime, Proxy],
) -> None:
    a, b, proxy = two
    ka, kb = a.engines["knowledge"], b.engines["knowledge"]
    vb = _versions(b, "knowledge")

    async def docs(query: str) -> set[str]:
        # results are cached in Redis per generation: a stale generation on b would
        # answer from the cache, without a's newer documents
        hits = await kb.search(query, user_id="k1", limit=20)  # type: ignore[attr-defined]
        return {str(h.metadata["path"]).rsplit("/", 1)[-1] for h in hits}

    async def add(text: str, source: str) -> None:
        await ka.add_knowledge(text, user_id="k1", collection="c", source=source)  # type: ignore[attr-defined]

    await add("# Boiler\n\nBleed the radiators every autumn.", "boiler.md")
    assert await docs("radiators") == {"boiler.md"}
    assert await docs("bicycle chain") == set()
    reads = vb.db_reads
    assert await docs("bicycle chain") == set()
    assert vb.db_reads == reads  # unchanged scope: no DB round trip for the generation
    await add("# Bikes\n\nOil the bicycle chain monthly.", "bike.md")
    assert await docs("bicycle chain") == {"bike.md"}  # seen at once
    assert vb.db_reads == reads + 1

    proxy.cut()  # Redis unreachable for both instances
    await add("# Car\n\nOil the car engine in winter.", "car.md")  # its publish is lost
    assert a.redis is not None and not a.redis.healthy
    assert await docs("oil") == {"bike.md", "car.md"}
    assert b.redis is not None and not b.redis.healthy
    before = vb.db_reads
    await docs("oil")
    assert vb.db_reads == before + 1  # no Redis: every search reads the DB counter

    proxy.restore()
    assert (await a.redis.status())[0] and (await b.redis.status())[0]  # both reach Redis again
    await a.redis.flush()  # their recovery hooks (new epochs) run in the background
    await b.redis.flush()
    reads = vb.db_reads
    assert await docs("oil") == {"bike.md", "car.md"}
    assert await docs("oil") == {"bike.md", "car.md"}
    assert vb.db_reads == reads + 1  # the fast path again, after one re-read


async def test_publish_lost_during_a_cut_is_caught_by_the_epoch(
    two: tuple[Runtime, Runtime, Proxy],
) -> None:
    """b never noticed the outage; a's write during it could not be published. When a
    reaches Redis again it replaces the epoch, so b does not keep its stale version."""
    a, b, proxy = two
    ma, mb = a.engines["memory"], b.engines["memory"]
    first = await ma.remember("m2", "The user grows tomatoes")  # type: ignore[attr-defined]
    hits = await mb.search("garden", user_id="m2", mode="vector", limit=10)  # type: ignore[attr-defined]
    assert [h.id for h in hits] == [first[0]]
    proxy.cut()
    second = await ma.remember("m2", "The user keeps bees")  # type: ignore[attr-defined]
    assert a.redis is not None
    await a.redis.flush()  # the publish is fire-and-forget: wait for it to fail
    assert not a.redis.healthy  # the publish failed
    proxy.restore()
    assert (await a.redis.status())[0]  # a is back: it replaces the epoch
    await a.redis.flush()  # the new epoch is written by a recovery hook in the background
    assert b.redis is not None and b.redis.healthy  # b saw no failure at all
    hits = await mb.search("garden", user_id="m2", mode="vector", limit=10)  # type: ignore[attr-defined]
    assert {h.id for h in hits} == {first[0], second[0]}
