"""Memory and knowledge search on the real PostgreSQL: full-text keyword search through
the GIN indexes, vectors in the rows, the same hybrid ranking, and two instances
seeing each other's writes (per-scope in-process indexes invalidated by generation)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from helpers import write_engines
from pg_redis_helpers import pg_database

from cozy.core.types import Message
from cozy.runtime import Runtime
from cozy.settings import Settings
from cozy.testing import FakeModelServer

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with pg_database() as url:
        yield url


def _yaml(fake: FakeModelServer, embed: bool) -> str:
    out = (
        "memory: {provider: local, timeout: 5}\nprofile: {provider: none}\n"
        "knowledge: {provider: local, timeout: 5}\n"
    )
    if embed:
        return out + (
            f"embed: {{provider: openai, base_url: '{fake.url}/v1', model: fake-embed, "
            "api_key: test}\n"
        )
    return out + "embed: {provider: none}\n"


@pytest.fixture
async def two(
    pg_url: str, tmp_path: Path, fake_model: FakeModelServer
) -> AsyncIterator[tuple[Runtime, Runtime]]:
    rts = []
    for name in ("a", "b"):
        home = tmp_path / name
        home.mkdir()
        write_engines(home, fake_model.url, _yaml(fake_model, embed=True))
        rts.append(await Runtime.open(Settings(home=home, database_url=pg_url)))
    try:
        yield rts[0], rts[1]
    finally:
        for rt in rts:
            await rt.close()


DOCS = {
    "boiler.md": "# Boiler maintenance\n\nBleed the radiators every autumn before heating.",
    "garden.md": "# Garden\n\nPrune the apple tree in late winter; mulch the roses.",
    "car.md": "# Car\n\nThe car needs winter tyres from November to March.",
}


async def test_knowledge_keyword_and_hybrid_on_postgres(two: tuple[Runtime, Runtime]) -> None:
    a, b = two
    ka, kb = a.engines["knowledge"], b.engines["knowledge"]
    for source, text in DOCS.items():
        await ka.add_knowledge(text, user_id="u1", collection="house", source=source)  # type: ignore[attr-defined]
    await ka.add_knowledge("radiators of the office", user_id="u2", source="x.md")  # type: ignore[attr-defined]
    hits = await kb.search_knowledge("radiators bleeding", user_id="u1", limit=3)  # type: ignore[attr-defined]
    assert hits and "boiler" in hits[0].citation.lower()
    assert all("office" not in h.text for h in hits)  # the caller's scope only
    # keyword path alone: stemming (bleeding ~ bleed), heading weighted, scoped
    gen = await kb.index.generation("u1")  # type: ignore[attr-defined]

    async def keyword(query: str, collections: list[str] | None, prefix: str | None) -> list:  # type: ignore[type-arg]
        return await kb.keyword_search(query, "u1", collections, prefix, 5, gen)  # type: ignore[attr-defined,no-any-return]

    ranked = await keyword("winter", ["house"], None)
    assert len(ranked) == 2  # garden and car mention winter
    both = await keyword("winter tyres", None, None)
    assert len(both) == 2 and both[0][1] >= both[1][1]  # all words first (car), then any word
    fallback = await keyword("winter zeppelin", None, None)
    assert {i for i, _ in fallback} == {i for i, _ in ranked}  # no chunk has both: any word
    assert await keyword("winter", ["nope"], None) == []
    by_path = await keyword("winter", None, "car")
    assert len(by_path) == 1
    # instance b has loaded its vector matrix; a write on a is seen by b's next search
    await ka.add_knowledge(  # type: ignore[attr-defined]
        "# Bikes\n\nOil the bicycle chain monthly.",
        user_id="u1",
        collection="house",
        source="bike.md",
    )
    hits = await kb.search_knowledge("bicycle chain", user_id="u1", limit=3)  # type: ignore[attr-defined]
    assert hits and "bike" in hits[0].citation


async def test_keyword_queries_use_the_gin_index(two: tuple[Runtime, Runtime]) -> None:
    a, _ = two
    async with a.store.engine.connect() as conn:
        await conn.exec_driver_sql("SET enable_seqscan = off")
        for table in ("knowledge_chunks", "memories"):
            plan = await conn.exec_driver_sql(
                f"EXPLAIN SELECT id FROM {table} WHERE tsv @@ to_tsquery('english', 'winter')"
            )
            text = "\n".join(r[0] for r in plan.fetchall())
            assert f"ix_{table}_tsvcol" in text, text
        # the stored column is the weighted expression (heading A, text B)
        row = await conn.exec_driver_sql(
            "SELECT tsv::text FROM knowledge_chunks WHERE heading LIKE '%Car%' LIMIT 1"
        )
        assert "'car':1A" in row.scalar_one()


async def test_memory_across_instances_on_postgres(
    two: tuple[Runtime, Runtime], fake_model: FakeModelServer
) -> None:
    a, b = two
    ma, mb = a.engines["memory"], b.engines["memory"]
    assert await mb.search_memories("sourdough", user_id="m1") == []  # type: ignore[attr-defined]
    fake_model.add_rule(
        user_contains="New conversation",
        json={"operations": [{"op": "add", "text": "The user bakes sourdough bread on Sundays"}]},
    )
    await ma.add_memory(  # type: ignore[attr-defined]
        [Message("user", "I bake sourdough every Sunday")], user_id="m1"
    )
    await asyncio.sleep(0.6)  # b re-reads the user's version after version_ttl (0.5 s)
    hits = await mb.search_memories("sourdough baking", user_id="m1")  # type: ignore[attr-defined]
    assert hits and "sourdough" in hits[0].text
    assert await mb.search_memories("sourdough", user_id="m2") == []  # type: ignore[attr-defined]


async def test_memory_keyword_uses_turn_context_and_idf_on_postgres(
    two: tuple[Runtime, Runtime],
) -> None:
    """The SQLite FTS5 signals on Postgres: a turn's neighbours (`context`, weight B)
    are searched below its own text (A); a rare word counts more than a common one."""
    import sqlalchemy as sa

    from cozy.engines.memory.repo import MemoryRepo

    a, _ = two
    mem = a.engines["memory"]
    store = a.store
    ids = {}
    async with store.engine.begin() as conn:
        for key, text, context in (
            ("own", "We flew to Lisbon in May", None),
            ("ctx", "Yes, it was lovely!", "Did you enjoy Lisbon?"),
            ("common", "Coffee with milk, coffee again", None),
            ("rare", "Coffee near the aqueduct", None),
        ):
            ids[key] = await mem.repo.insert(  # type: ignore[attr-defined]
                conn, user_id="ctxu", kind="turn", text=text, context=context
            )
        for i in range(30):  # `coffee` is common, `aqueduct` is rare
            await mem.repo.insert(conn, user_id="other", kind="turn", text=f"coffee {i}")  # type: ignore[attr-defined]
        for i in range(400):  # the user filter alone is not selective: the words are
            await mem.repo.insert(conn, user_id="ctxu", kind="fact", text=f"filler note {i}")  # type: ignore[attr-defined]
        await conn.exec_driver_sql("ANALYZE memories")
    kw = mem.repo  # type: ignore[attr-defined]
    ranked = await kw.keyword("ctxu", "lisbon", 10)
    assert [i for i, _ in ranked] == [ids["own"], ids["ctx"]]  # own text first, then context
    assert ranked[0][1] > ranked[1][1] > 0
    assert await kw.keyword("ctxu", "lisbon", 10, kinds=["fact"]) == []
    ranked = await kw.keyword("ctxu", "coffee aqueduct", 10)
    assert ranked[0][0] == ids["rare"]  # the rare word wins over two common ones
    kw.keywords.budget = 5  # `coffee` (33 rows) is over budget: the rare word alone is ranked
    assert [i for i, _ in await kw.keyword("ctxu", "coffee aqueduct", 10)] == [ids["rare"]]
    # the real statement goes through the GIN index (no per-row tsquery parsing)
    seen: list[sa.TextClause] = []
    read = store.read

    async def spy(stmt: sa.TextClause) -> list[object]:
        seen.append(stmt)
        return await read(stmt)

    store.read = spy  # type: ignore[method-assign]
    try:
        await MemoryRepo(store).keyword("ctxu", "lisbon aqueduct", 10)
    finally:
        store.read = read  # type: ignore[method-assign]
    async with store.engine.connect() as conn:
        await conn.exec_driver_sql("SET enable_seqscan = off")
        for stmt in seen:
            sql = str(
                stmt.compile(dialect=store.engine.dialect, compile_kwargs={"literal_binds": True})
            )
            plan = "\n".join(
                r[0] for r in (await conn.exec_driver_sql("EXPLAIN " + sql)).fetchall()
            )
            assert "ix_memories_tsvcol" in plan, plan
