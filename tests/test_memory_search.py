"""memory.local retrieval internals on real SQLite: turns indexed with their neighbours,
the keyword plan over FTS5, the 0008 migration of an older index, and the vector
matrix kept up to date incrementally across two engine instances (two processes)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from cozy.engines.base import EngineContext
from cozy.engines.embed.local import LocalEmbedder
from cozy.engines.memory.local import LocalMemory
from cozy.engines.memory.types import TurnInput
from cozy.engines.retrieval.keyword import plan
from cozy.engines.retrieval.terms import query_terms
from cozy.engines.retrieval.vector_index import VectorIndex
from cozy.storage.store import Store


@pytest.fixture
async def store(cozy_home: Path) -> AsyncIterator[Store]:
    s = await Store.open(f"sqlite:///{cozy_home / 'mem.db'}")
    yield s
    await s.close()


def turns(*texts: str, prefix: str = "m") -> list[TurnInput]:
    return [TurnInput(f"{prefix}{i}", "user", t) for i, t in enumerate(texts)]


async def test_turns_carry_their_neighbours(store: Store) -> None:
    mem = LocalMemory({"embeddings": False}, EngineContext(store=store))
    (q,) = await mem.index_turns(
        turns("Which instrument did you pick up last month?", prefix="a"),
        user_id="u",
        session_id="s1",
    )
    a1, a2 = await mem.index_turns(
        turns("The cello! I practise every morning", "My teacher is strict", prefix="b"),
        user_id="u",
        session_id="s1",
    )
    rows = await mem.repo.get_many([q, a1, a2])
    assert rows[q].metadata["prev"] is None and rows[q].metadata["next"] == a1
    assert rows[a1].metadata["prev"] == q and rows[a1].metadata["next"] == a2
    assert rows[a2].metadata["prev"] == a1 and rows[a2].metadata["next"] is None
    # the question turn's keyword context learnt the answer that came later
    hits = await mem.search("cello", user_id="u", kinds=("turn",), mode="keyword")
    assert hits[0].id == a1 and {h.id for h in hits} == {q, a1, a2}  # own text ranks first
    hits = await mem.search("what instrument", user_id="u", kinds=("turn",), mode="keyword")
    assert {h.id for h in hits} >= {q, a1}
    # indexing the same messages again changes nothing (idempotent, no doubled context)
    again = turns("The cello! I practise every morning", "My teacher is strict", prefix="b")
    assert await mem.index_turns(again, user_id="u", session_id="s1") == []
    ctx = await store.read(sa.text("SELECT context FROM memories WHERE id = :i").bindparams(i=q))
    assert ctx[0][0].count("cello") == 1
    # another session is not a neighbour
    (other,) = await mem.index_turns(
        turns("Unrelated: the bus was late", prefix="c"), user_id="u", session_id="s2"
    )
    assert (await mem.repo.get_many([other]))[other].metadata["prev"] is None


def test_keyword_plan_keeps_rare_terms_within_budget() -> None:
    assert query_terms("When did Caroline go to the LGBTQ support group?") == [
        "caroline",
        "go",
        "lgbtq",
        "support",
        "group",
    ]
    p = plan({"cello": 3, "music": 400, "today": 9000, "zzz": 0}, budget=500)
    assert p.terms == ["cello", "music"] and not p.window
    p = plan({"today": 9000, "music": 4000}, budget=500)
    assert p.terms == ["music"] and p.window


async def test_common_words_and_other_users_rows(store: Store) -> None:
    mem = LocalMemory({"embeddings": False, "keyword_budget": 100}, EngineContext(store=store))
    await mem.index_turns(
        turns(*[f"coffee break number {i}" for i in range(300)], prefix="a"),
        user_id="u",
        session_id="s",
    )
    (rare,) = await mem.index_turns(
        turns("coffee in Lisbon with Ana", prefix="b"), user_id="u", session_id="t"
    )
    hits = await mem.search("coffee Lisbon", user_id="u", limit=3, mode="keyword")
    assert hits[0].id == rare
    # every word common: only the newest matches are ranked, still an answer
    assert len(await mem.search("coffee break", user_id="u", limit=5, mode="keyword")) == 5
    # another user's rows fill the capped FTS ranking: the query looks further
    await mem.index_turns(
        turns("a garden party", "garden tools", prefix="g"), user_id="v", session_id="x"
    )
    await mem.index_turns(
        turns(*[f"garden plan {i} garden" for i in range(250)], prefix="h"),
        user_id="u",
        session_id="y",
    )
    hits = await mem.search("garden", user_id="v", limit=5, mode="keyword")
    assert sorted(h.text for h in hits) == ["a garden party", "garden tools"]


async def test_migration_0008_rebuilds_an_old_keyword_index(cozy_home: Path) -> None:
    url = f"sqlite:///{cozy_home / 'old.db'}"
    store = await Store.open(url)
    mem = LocalMemory({"embeddings": False}, EngineContext(store=store))
    await mem.remember("u", "The user's cat is called Miso")
    async with store.engine.begin() as conn:  # back to the schema before 0008
        for name in ("memories_fts_ai", "memories_fts_ad", "memories_fts_au"):
            await conn.exec_driver_sql(f"DROP TRIGGER {name}")
        await conn.exec_driver_sql("DROP TABLE memories_fts")
        await conn.exec_driver_sql("ALTER TABLE memories DROP COLUMN context")
        await conn.exec_driver_sql(
            "CREATE VIRTUAL TABLE memories_fts USING fts5(text, content='memories', "
            "content_rowid='rowid', tokenize='porter unicode61')"
        )
        await conn.exec_driver_sql("INSERT INTO memories_fts(memories_fts) VALUES ('rebuild')")
        await conn.exec_driver_sql(
            "DELETE FROM schema_migrations WHERE name = '0008_memory_turn_context'"
        )
    await store.close()
    store = await Store.open(url)  # runs 0008
    try:
        mem = LocalMemory({"embeddings": False}, EngineContext(store=store))
        hits = await mem.search("cat called", user_id="u", mode="keyword")
        assert [h.text for h in hits] == ["The user's cat is called Miso"]
        await mem.index_turns(turns("hello", "my cat Miso sleeps"), user_id="u", session_id="s")
        hits = await mem.search("hello", user_id="u", kinds=("turn",), mode="keyword")
        assert len(hits) == 2  # the second turn matches through its context
    finally:
        await store.close()


def test_vector_index_grows_removes_and_skips_other_dimensions() -> None:
    idx = VectorIndex.empty(0)
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((40, 8)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    for i, v in enumerate(vecs):
        idx.add(f"m{i}", v)
    assert len(idx) == 40 and idx.matrix.shape == (40, 8)
    best = idx.search(vecs[7], 3)
    assert best[0][0] == "m7"
    idx.remove("m7")
    assert "m7" not in [m for m, _ in idx.search(vecs[7], 40)]
    assert len(idx.search(vecs[7], 40)) == 39
    idx.add("m3", -vecs[3])  # an update replaces the row
    assert idx.search(vecs[3], 40)[-1][0] == "m3"
    idx.add("odd", np.ones(5, dtype=np.float32))  # another model's size: ignored
    assert len(idx) == 39 and idx.search(np.ones(5), 3) == []
    # a matrix read straight from stored bytes is read-only: edits must still work
    loaded = VectorIndex(1, ["a", "b"], np.frombuffer(vecs[:2].tobytes(), np.float32).reshape(2, 8))
    loaded.remove("a")
    loaded.add("b", vecs[5])
    assert [m for m, _ in loaded.search(vecs[5], 5)] == ["b"]


class CountingEmbedder(LocalEmbedder):
    calls = 0

    async def embed(self, texts: list[str]) -> list[list[float]]:  # type: ignore[override]
        type(self).calls += len(texts)
        return await super().embed(texts)


@pytest.fixture(scope="module")
def minilm() -> CountingEmbedder:
    emb = CountingEmbedder({})
    if not emb.available():
        pytest.skip("all-MiniLM-L6-v2 not installed (run ./install.sh)")
    return emb


async def test_two_instances_keep_vectors_in_step(store: Store, minilm: CountingEmbedder) -> None:
    opts = {"version_ttl": 0, "vector_timeout": 60}
    a = LocalMemory(opts, EngineContext(store=store, embedder=minilm))
    b = LocalMemory(opts, EngineContext(store=store, embedder=minilm))
    await a.index_turns(
        turns("I adopted a puppy named Rex", "We went sailing near Porto"),
        user_id="u",
        session_id="s",
    )
    hits = await a.search("my dog", user_id="u", mode="vector")
    assert "puppy" in hits[0].text
    idx = a._indexes["u"]
    assert await b.search("puppy", user_id="nobody") == []  # caches version 0 for nobody
    await a.index_turns(turns("nobody likes puppies", prefix="n"), user_id="nobody")
    b.version_ttl = 60.0  # a version 0 is re-read anyway: new users' memories show at once
    assert [h.text for h in await b.search("puppy", user_id="nobody")] == ["nobody likes puppies"]
    b.version_ttl = 0.0
    fact, _ = await b.remember("u", "The user plays the bassoon in an orchestra")
    hits = await a.search("which musical instrument", user_id="u", mode="vector", limit=1)
    assert hits[0].id == fact
    assert a._indexes["u"] is idx  # refreshed in place, not reloaded
    await b.forget("u", fact)
    hits = await a.search("which musical instrument", user_id="u", mode="vector")
    assert fact not in [h.id for h in hits]
    assert a._indexes["u"] is idx and len(idx) == 2
    # the same query again is not embedded again
    before = CountingEmbedder.calls
    await a.search("which musical instrument", user_id="u")
    assert CountingEmbedder.calls == before


async def test_a_big_vector_index_is_encoded_when_loaded(store: Store) -> None:
    """Searches run on the caller's thread (numkong holds the GIL), so the int8 copy of a
    big index is made when the matrix is loaded, in a worker thread, not by the first
    search on the event loop (~0.18 CPU s at 100k rows)."""
    from cozy.engines.memory.repo import to_blob
    from cozy.engines.memory.texthash import text_hash
    from cozy.engines.retrieval.vectors import APPROX_FROM
    from cozy.storage.tables.memory import memories, memory_versions

    n = APPROX_FROM + 100
    vecs = np.random.default_rng(4).standard_normal((n, 384)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    rows = [
        {"id": f"mem{i:05}", "user_id": "u", "kind": "turn", "text": f"turn {i}",
         "text_hash": text_hash(f"turn {i}"), "status": "active", "source_message_ids": [],
         "occurred_at": float(i), "created_at": 1.0, "updated_at": 1.0,
         "embedding": to_blob(vecs[i]), "embed_model": "test", "metadata": {}}
        for i in range(n)
    ]  # fmt: skip
    async with store.engine.begin() as conn:
        await conn.execute(sa.insert(memories), rows)
        await conn.execute(sa.insert(memory_versions).values(user_id="u", version=1))
    mem = LocalMemory({"embeddings": True}, EngineContext(store=store))
    idx = await mem.index("u")
    assert len(idx) == n
    assert idx._coarse is not None and idx._coarse.count == n  # encoded before any search
    found = idx.search(vecs[7], 5)
    assert found[0][0] == "mem00007" and found[0][1] == pytest.approx(1.0, abs=1e-5)
