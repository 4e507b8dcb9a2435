"""What memory search keeps between searches (issue #3): candidate rows cached per
version of a user, feedback vectors taken from the vector index, and the index
refresh's single read of the changed rows and the vector count."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from cozy.engines.base import EngineContext
from cozy.engines.memory.local import LocalMemory
from cozy.engines.memory.rows import MemoryRow, to_blob
from cozy.engines.memory.search import RowCache
from cozy.engines.retrieval import vectors
from cozy.engines.retrieval.vector_index import VectorIndex
from cozy.storage.store import Store


@pytest.fixture
async def store(cozy_home: Path) -> AsyncIterator[Store]:
    s = await Store.open(f"sqlite:///{cozy_home / 'cache.db'}")
    yield s
    await s.close()


def test_row_cache_empties_when_the_version_moves() -> None:
    cache: RowCache[str] = RowCache(max_rows=3)
    cache.get("u", 1)["a"] = "row a"
    assert cache.get("u", 1) == {"a": "row a"}
    assert cache.get("v", 1) == {}  # per user
    assert cache.get("u", 2) == {}  # a write bumped the version
    rows = cache.get("u", 2)
    rows.update({f"m{i}": "x" for i in range(4)})
    assert cache.get("u", 2) == {}  # over max_rows: starts again
    few: RowCache[str] = RowCache(max_users=2)
    for user in ("a", "b", "a", "c"):  # "b" is the least recently searched
        few.get(user, 1)[user] = f"row of {user}"
    assert few.get("a", 1) == {"a": "row of a"} and few.get("c", 1) == {"c": "row of c"}
    assert few.get("b", 1) == {}


def test_vector_index_hands_out_copies_of_its_rows() -> None:
    vecs = np.eye(4, dtype=np.float32)
    idx = VectorIndex(1, ["a", "b", "c", "d"], vecs)
    got = idx.vector("b")
    assert got is not None and got.tolist() == [0.0, 1.0, 0.0, 0.0]
    got[:] = 5.0  # the caller's copy: the index keeps its row
    assert [m for m, _ in idx.search(vecs[1], 1)] == ["b"]
    assert idx.matrix[1].tolist() == [0.0, 1.0, 0.0, 0.0]
    idx.remove("b")
    assert idx.vector("b") is None and idx.vector("nope") is None


async def test_search_shows_edits_and_forgets_through_the_row_cache(store: Store) -> None:
    # version_ttl 60: only this engine's own writes move the version it sees
    mem = LocalMemory({"embeddings": False, "version_ttl": 60}, EngineContext(store=store))
    mid, _ = await mem.remember("u", "My sister plays the violin")

    async def texts() -> list[str]:
        return [h.text for h in await mem.search("violin", user_id="u", mode="keyword")]

    assert await texts() == ["My sister plays the violin"]
    version = await mem.version("u")
    assert set(mem._row_cache.get("u", version)) == {mid}  # read once, kept
    await mem.edit_memory("u", mid, "My sister plays the violin and the cello")
    assert await texts() == ["My sister plays the violin and the cello"]
    await mem.forget("u", mid)
    assert await texts() == []
    await mem.restore("u", mid)
    assert await texts() == ["My sister plays the violin and the cello"]


async def test_refresh_reads_changes_and_count_together(store: Store) -> None:
    mem = LocalMemory({"embeddings": False}, EngineContext(store=store))
    first, _ = await mem.remember("u", "I live in Lisbon")
    second, _ = await mem.remember("u", "I work as a nurse")
    await mem.repo.set_vectors("u", [(first, [1.0, 0.0]), (second, [0.0, 1.0])], "m")
    changed, count = await mem.repo.changes("u", 0.0)
    assert count == 2
    assert sorted(changed) == [
        (mid, to_blob(vec), "active")
        for mid, vec in sorted([(first, [1.0, 0.0]), (second, [0.0, 1.0])])
    ]
    assert await mem.repo.changes("u", 1e12) == ([], 2)
    assert await mem.repo.changes("nobody", 0.0) == ([], 0)


async def test_hybrid_search_above_the_approx_threshold_reads_each_row_once(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The big-index path (int8 pass, shortlist for the feedback search) on a few rows."""
    mem = LocalMemory({"version_ttl": 60}, EngineContext(store=store))
    texts = [f"item {i} about the violin" if i % 4 == 0 else f"item {i} on tea" for i in range(40)]
    ids = [(await mem.remember("u", t))[0] for t in texts]
    vecs = np.random.default_rng(3).standard_normal((len(ids), 8)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    await mem.repo.set_vectors("u", [(m, v.tolist()) for m, v in zip(ids, vecs, strict=True)], "m")
    mem.embeddings.use(object())  # query vectors from the cache
    mem.embeddings.remember("the violin", vecs[0].tolist())
    exact = await mem.search("the violin", user_id="u", limit=8)
    mem._row_cache = type(mem._row_cache)()  # cold again
    read: list[str] = []
    get_many = mem.repo.get_many

    async def counted(wanted: Sequence[str]) -> dict[str, MemoryRow]:
        read.extend(wanted)
        return await get_many(wanted)

    monkeypatch.setattr(mem.repo, "get_many", counted)
    monkeypatch.setattr(vectors, "APPROX_FROM", 10)
    monkeypatch.setattr(vectors, "SHORTLIST_FROM", 10)
    big = await mem.search("the violin", user_id="u", limit=8)
    assert (await mem.index("u")).shortlisted(vecs[0])  # the feedback search used it
    assert [h.id for h in big] == [h.id for h in exact]
    assert [h.score for h in big] == pytest.approx([h.score for h in exact], abs=1e-6)
    assert len(read) == len(set(read)) == len(ids)  # every candidate's row, read once


async def test_rows_read_by_id_match_sqlalchemys(store: Store) -> None:
    """get_many reads SQLite with its own SQL and decodes the JSON columns itself: every
    field equals what the SQLAlchemy select gives, NULL JSON and integer times included,
    across more ids than one statement takes."""
    import sqlalchemy as sa

    from cozy.engines.memory.repo import _BY_IDS, MemoryRepo
    from cozy.engines.memory.rows import RAW_CHUNK, _row
    from cozy.storage.tables.memory import memories

    mem = LocalMemory({"embeddings": False}, EngineContext(store=store))
    ids: list[str] = []
    for i in range(RAW_CHUNK + 7):

        async def one(conn: object, i: int = i) -> str:
            return await MemoryRepo.insert(
                conn,  # type: ignore[arg-type]
                user_id="u",
                kind="turn" if i % 2 else "fact",
                text=f"note {i} — café ünïcode",
                session_id=f"s{i % 3}" if i % 5 else None,
                source_ids=[f"m{i}", "m0"] if i % 4 else (),
                occurred_at=1_700_000_000 + i if i % 3 else None,
                metadata={"prev": f"x{i}", "n": i, "nested": {"a": [1, 2.5]}} if i % 6 else {},
            )

        ids.append(await mem.repo.write("u", one))
    async with store.engine.begin() as conn:  # NULL JSON columns, an integer time
        await conn.execute(
            sa.update(memories)
            .where(memories.c.id == ids[1])
            .values(metadata=sa.null(), source_message_ids=sa.null(), created_at=5)
        )
    got = await mem.repo.get_many([*ids, "missing"])
    want = await store.read_with(
        lambda conn: {r.id: _row(r) for r in conn.execute(_BY_IDS, {"ids": ids})}
    )
    assert len(got) == len(ids) and got == want
    assert got[ids[1]].metadata == {} and got[ids[1]].source_message_ids == []
    for mid in ids:  # the same types too (5 == 5.0, but JSON output would differ)
        assert [type(v) for v in got[mid].to_dict().values()] == [
            type(v) for v in want[mid].to_dict().values()
        ]
