"""Fast retrieval paths: BM25 query planning under a budget, scoped vector matrices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from helpers import running
from knowledge_files import knowledge, write

from cozy.engines.knowledge.retrieval import build_vectors
from cozy.engines.retrieval.keyword import plan
from cozy.engines.retrieval.terms import DOC_STOPWORDS, query_terms
from cozy.testing import FakeModelServer


def test_plan_keeps_every_term_under_budget_and_the_rarest_over_it() -> None:
    freqs = {"zebra": 3, "paddock": 40, "animal": 900, "nothing": 0}
    exact = plan(freqs, budget=1000)
    assert exact.terms == ["zebra", "paddock", "animal"] and not exact.window
    assert exact.matches == 943
    pruned = plan(freqs, budget=100)
    assert pruned.terms == ["zebra", "paddock"] and pruned.matches == 43 and not pruned.window
    common = plan({"animal": 900, "the": 1000}, budget=100)
    assert common.terms == ["animal"] and common.window
    assert plan({"nothing": 0}, budget=10).terms == []
    got = query_terms("How do we rotate the keys, the KEYS?", stopwords=DOC_STOPWORDS)
    assert got == ["rotate", "keys"]


async def test_bm25_budget_finds_rare_terms_and_bounds_common_ones(
    cozy_home: Path, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    tree = tmp_path / "farm"
    for i in range(60):
        zebra = f" The zebra of barn {i} escaped." if i in (7, 41) else ""
        body = "\n\n".join(
            f"Animal note {j} of barn {i}: every animal gets hay.{zebra if j == 2 else ''}"
            for j in range(5)
        )
        write(tree / f"barn{i:02}.md", f"# Barn {i}\n\n{body}\n")
    async with running(
        cozy_home,
        fake_model.url,
        "knowledge: {provider: local, embed: false, chunk_tokens: 16, keyword_budget: 100}\n",
    ) as rt:
        k = await knowledge(rt)
        report = await k.add_paths([tree], user_id="local", collection="farm")
        assert report.counts() == {"added": 60}
        gen = await k.index.generation("local")
        freqs = {}
        async with rt.store.engine.connect() as conn:  # each term's document frequency
            for term in ("animal", "zebra"):
                sql = f"SELECT count(*) FROM knowledge_fts WHERE knowledge_fts MATCH '{term}'"
                freqs[term] = (await conn.exec_driver_sql(sql)).scalar_one()
        assert 2 <= freqs["zebra"] <= 4 and freqs["animal"] > 100  # 'animal': over budget

        async def ids(query: str, budget: int) -> list[int]:
            k.keywords.budget = budget
            found = await k.keyword_search(query, "local", None, None, 10, gen)
            return [c for c, _ in found]

        pruned, exact = await ids("animal zebra", 100), await ids("animal zebra", 10_000)
        assert len(pruned) == freqs["zebra"]  # only the rare term was ranked...
        assert set(pruned) == set(exact[: len(pruned)])  # ...and it decides the top anyway
        hits = await k.search("animal zebra", user_id="local", mode="bm25", limit=2)
        assert {Path(h.metadata["path"]).name for h in hits} == {"barn07.md", "barn41.md"}
        # only common words: the newest `budget` matches are ranked, never nothing
        window = await ids("animal", 100)
        async with rt.store.engine.connect() as conn:
            matching = [
                r[0]
                for r in await conn.exec_driver_sql(
                    "SELECT rowid FROM knowledge_fts WHERE knowledge_fts MATCH 'animal' "
                    "ORDER BY rowid DESC"
                )
            ]
        newest = set(matching[:101])
        assert len(window) == 10 and set(window) <= newest and len(matching) > 101
        k.keywords.budget = 100
        assert await k.keyword_search("zebra", "local", ["other"], None, 5, gen) == []
        by_prefix = await k.search(
            "zebra", user_id="local", mode="bm25", prefix=str(tree / "barn4")
        )
        assert {Path(h.metadata["path"]).name for h in by_prefix} == {"barn41.md"}


def test_scoped_vector_search_equals_filtered_brute_force() -> None:
    rng = np.random.default_rng(3)
    n, dims = 600, 16
    colls = ["alpha", "beta", "gamma"]
    rows = []
    for i in range(n):
        vec = rng.standard_normal(dims).astype(np.float32)
        vec /= np.linalg.norm(vec)
        rows.append((1000 + i, colls[i % 3], f"/docs/{colls[i % 3]}/d{i % 7}.md", vec.tobytes()))
    rows.sort(key=lambda r: (r[1], r[0]))  # the loader's order: collection, id
    vectors = build_vectors(rows, generation=1, dims=dims)
    assert vectors.scopes == {"alpha": (0, 200), "beta": (200, 400), "gamma": (400, 600)}
    query = rng.standard_normal(dims).astype(np.float32)
    query /= np.linalg.norm(query)
    full = {r[0]: float(np.frombuffer(r[3], np.float32) @ query) for r in rows}

    def brute(keep: set[str] | None, prefix: str | None, k: int) -> list[int]:
        ok = [
            r[0]
            for r in rows
            if (keep is None or r[1] in keep) and (prefix is None or r[2].startswith(prefix))
        ]
        return sorted(ok, key=lambda cid: -full[cid])[:k]

    got = vectors.search(query, collections=None, prefix=None, k=10)
    assert [c for c, _ in got] == brute(None, None, 10)
    assert all(abs(s - full[c]) < 1e-5 for c, s in got)
    two = vectors.search(query, collections=["gamma", "alpha", "nope"], prefix=None, k=10)
    assert [c for c, _ in two] == brute({"alpha", "gamma"}, None, 10)
    pre = vectors.search(query, collections=["beta"], prefix="/docs/beta/d3", k=50)
    assert [c for c, _ in pre] == brute({"beta"}, "/docs/beta/d3", 50) and len(pre) < 50
    assert vectors.search(query, collections=["nope"], prefix=None, k=5) == []
    some = rows[123]
    found = vectors.vector(some[0])
    assert found is not None and np.array_equal(found, np.frombuffer(some[3], np.float32))
    assert vectors.vector(5) is None
    assert len(build_vectors([], generation=1, dims=dims)) == 0
