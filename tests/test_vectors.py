"""The shared vector top-k (cozy/engines/retrieval/vectors.py): recall of the int8 pass against
exact search on random data, scopes and masks, and the memory index kept in step
with adds, updates and removes above the approximate threshold."""

from __future__ import annotations

import numpy as np
import pytest

from cozy.engines.knowledge.retrieval import build_vectors
from cozy.engines.retrieval import vectors
from cozy.engines.retrieval.vector_index import VectorIndex
from cozy.engines.retrieval.vectors import Int8Rows, quantize, top_k

DIMS = 384
BIG = max(vectors.APPROX_FROM, 20_000) + 5_000  # above the threshold: the two-stage path runs


def unit(rows: int, seed: int) -> np.ndarray:
    m = np.random.default_rng(seed).standard_normal((rows, DIMS)).astype(np.float32)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    return m


@pytest.fixture(scope="module")
def big() -> np.ndarray:
    return unit(BIG, 1)


def exact_top(matrix: np.ndarray, q: np.ndarray, k: int) -> list[int]:
    return [int(i) for i in np.argsort(-(matrix @ q), kind="stable")[:k]]


def test_quantize_round_trip_is_close() -> None:
    m = unit(50, 3)
    codes, scales = quantize(m)
    assert codes.dtype == np.int8
    assert np.abs(codes.astype(np.float32) * scales[:, None] - m).max() < 0.01
    zero_codes, zero_scales = quantize(np.zeros((2, DIMS), np.float32))
    assert not zero_codes.any() and not zero_scales.any()


def test_int8_scores_track_exact_products(big: np.ndarray) -> None:
    coarse = Int8Rows.of(big[:2000])
    q = unit(1, 9)[0]
    approx = coarse.scores(q, 0, 2000) * quantize(q[None])[1][0]  # the query's scale
    assert approx.shape == (2000,)
    assert np.abs(approx - big[:2000] @ q).max() < 0.01


@pytest.mark.parametrize("k", [10, 50])
def test_two_stage_recall_against_exact(big: np.ndarray, k: int) -> None:
    coarse = Int8Rows.of(big)
    queries = unit(40, 7)
    hits = 0
    for q in queries:
        rows, scores = top_k(big, q, k, coarse=coarse)
        assert len(rows) == k
        assert np.allclose(scores, big[rows] @ q, atol=1e-5)  # returned scores are exact
        assert list(scores) == sorted(scores, reverse=True)
        hits += len(set(rows.tolist()) & set(exact_top(big, q, k)))
    assert hits / (k * len(queries)) >= 0.98


def test_small_scopes_stay_exact(big: np.ndarray) -> None:
    small = big[:1000]
    q = unit(1, 11)[0]
    rows, scores = top_k(small, q, 10, coarse=Int8Rows.of(small))
    assert rows.tolist() == exact_top(small, q, 10)
    assert np.allclose(scores, small[rows] @ q)


def test_ranges_and_mask_limit_the_rows(big: np.ndarray) -> None:
    coarse = Int8Rows.of(big)
    q = big[BIG - 3] + 0.01 * unit(1, 12)[0]  # close to a row in the second range
    parts = [(0, 12_000), (BIG - 12_000, BIG)]
    rows, _ = top_k(big, q, 20, ranges=parts, coarse=coarse)
    assert rows[0] == BIG - 3
    assert all(r < 12_000 or r >= BIG - 12_000 for r in rows.tolist())
    keep = np.ones(24_000, dtype=bool)
    keep[-3] = False  # BIG - 3 is the third row from the end of the concatenated ranges
    rows, _ = top_k(big, q, 20, ranges=parts, keep=keep, coarse=coarse)
    assert BIG - 3 not in rows.tolist() and len(rows) == 20
    only = np.zeros(24_000, dtype=bool)
    only[:5] = True
    rows, _ = top_k(big, q, 20, ranges=parts, keep=only, coarse=coarse)
    assert sorted(rows.tolist()) == [0, 1, 2, 3, 4]


def test_memory_index_add_update_remove_above_threshold(big: np.ndarray) -> None:
    ids = [f"m{i}" for i in range(BIG)]
    idx = VectorIndex(1, ids, big)
    probe = big[123]
    assert idx.search(probe, 5)[0][0] == "m123"  # builds the int8 copy
    assert idx._coarse is not None and idx._coarse.count == BIG

    fresh = unit(3, 21)
    for i, v in enumerate(fresh):
        idx.add(f"new{i}", v)
    mid, score = idx.search(fresh[2], 3)[0]
    assert mid == "new2" and score == pytest.approx(1.0, abs=1e-5)
    assert idx._coarse.count == BIG + 3  # new rows encoded on the search

    idx.add("m123", fresh[0])  # an update re-encodes the row in place
    top = [mid for mid, _ in idx.search(fresh[0], 2)]
    assert set(top) == {"new0", "m123"}

    idx.remove("new0")
    idx.remove("m123")
    found = [mid for mid, _ in idx.search(fresh[0], 50)]
    assert "new0" not in found and "m123" not in found and len(found) == 50
    assert len(idx) == BIG + 1
    assert idx.nbytes >= big.nbytes + BIG * DIMS  # float32 rows plus the int8 copy


def test_memory_index_with_removed_rows_matches_exact(big: np.ndarray) -> None:
    ids = [f"m{i}" for i in range(BIG)]
    idx = VectorIndex(1, ids, big.copy())
    gone = set(range(0, BIG, 3))
    for i in gone:
        idx.remove(f"m{i}")
    live = np.array(sorted(set(range(BIG)) - gone))
    q = unit(1, 31)[0]
    want = [f"m{live[i]}" for i in exact_top(big[live], q, 10)]
    got = [mid for mid, _ in idx.search(q, 10)]
    assert len(set(got) & set(want)) >= 9  # recall >= 0.9 on one query; exact usually


def test_knowledge_vectors_scope_and_prefix(big: np.ndarray) -> None:
    n = BIG
    rows = [
        (
            i + 1,
            "a" if i < n // 2 else "b",
            f"/docs/{'x' if i % 2 else 'y'}/{i // 100}.md",
            big[i].tobytes(),
        )
        for i in range(n)
    ]
    vecs = build_vectors(rows, 1, DIMS)
    assert vecs.index.nbytes > big.nbytes  # the int8 copy was made at load
    q = big[n - 2]  # chunk id n - 1, collection "b", path under /docs/y/
    top = vecs.search(q, collections=None, prefix=None, k=10)
    assert top[0][0] == n - 1 and top[0][1] == pytest.approx(1.0, abs=1e-5)
    scoped = vecs.search(q, collections=["a"], prefix=None, k=10)
    assert scoped and all(cid <= n // 2 for cid, _ in scoped)
    pref = vecs.search(q, collections=["b"], prefix="/docs/x/", k=10)
    assert pref and all(cid % 2 == 0 and cid > n // 2 for cid, _ in pref)
    want = exact_top(big, q, 10)
    assert len({c - 1 for c, _ in top} & set(want)) >= 9


@pytest.mark.parametrize("shape", ["random", "strided", "ties", "masked"])
def test_smallest_picks_the_same_set_as_a_full_partition(shape: str) -> None:
    rng = np.random.default_rng(5)
    values = rng.standard_normal(50_000).astype(np.float32)
    if shape == "strided":  # only sampled rows are small: too few fall under the cut-off
        values += 10.0
        values[:: vectors.SAMPLE_STEP] -= 20.0
    elif shape == "ties":
        values = np.round(values, 1)
    elif shape == "masked":  # rows masked out of a search score +inf after negation
        values[rng.random(len(values)) < 0.99] = np.inf
    for depth in (1, 50, 164, 2000):
        got = vectors._smallest(values, depth)
        assert len(got) == len(set(got.tolist())) == depth
        edge = np.partition(values, depth - 1)[depth - 1]
        assert np.all(values[got] <= edge)  # nothing bigger than the depth-th smallest
        assert np.count_nonzero(values < edge) <= depth  # every strictly smaller one is in
        assert np.all(np.isin(np.flatnonzero(values < edge), got))


def test_search_near_an_earlier_query_scores_its_shortlist_only(
    big: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [f"m{i}" for i in range(BIG)]
    idx = VectorIndex(1, ids, big.copy())
    q = unit(1, 41)[0]
    first = idx.search(q, 50)  # the int8 pass keeps its shortlist
    assert idx.shortlisted(q) and not idx.shortlisted(unit(1, 42)[0])
    far = "m777"  # a hit the query is not near (a keyword hit), outside the shortlist
    assert far not in [ids[i] for i in idx._shortlists[q.tobytes()]]
    hits = [first[0][0], first[1][0], far]
    moved = q + 0.5 * np.mean([big[int(m[1:])] for m in hits], axis=0)
    moved /= np.linalg.norm(moved)
    full = idx.search(moved, 50)
    # no second pass over every row: top_k is not called
    monkeypatch.setattr("cozy.engines.retrieval.vectors.top_k", _no_full_pass)
    near = idx.search(moved, 50, near=q, also=hits)
    assert [m for m, _ in near] == [m for m, _ in full]
    assert [s for _, s in near] == pytest.approx([s for _, s in full], abs=1e-6)
    # the hits are scored too: a vector moved far towards one is found
    pulled = 0.1 * q + big[777]
    pulled /= np.linalg.norm(pulled)
    assert idx.search(pulled, 1, near=q, also=hits)[0][0] == far
    assert far not in [m for m, _ in idx.search(pulled, 50, near=q)]
    idx.remove(first[0][0])  # removed since the first search: left out
    assert first[0][0] not in [m for m, _ in idx.search(moved, 50, near=q, also=hits)]
    with pytest.raises(AssertionError):  # a query never searched: a full pass
        idx.search(moved, 50, near=unit(1, 42)[0])


def _no_full_pass(*args: object, **kw: object) -> tuple[np.ndarray, np.ndarray]:
    raise AssertionError("a full pass over every row")


def test_searches_stay_on_the_callers_thread_only_while_numkong_scores_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """numkong's kernels hold the GIL, so memory and knowledge search on their own thread;
    without numkong the BLAS product releases it and big searches go to a worker thread."""
    assert vectors.holds_gil() is (vectors._numkong() is not None)
    assert vectors.holds_gil() is not vectors.uses_blas()
    monkeypatch.setattr(vectors, "_NK", False)  # as if numkong were not installed
    assert not vectors.holds_gil() and vectors.uses_blas()
