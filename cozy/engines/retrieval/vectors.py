"""Top-k cosine search over an in-memory float32 matrix, shared by memory and knowledge.

Small scopes are searched exactly (one float32 matrix x vector product, numkong's
kernel, BLAS without it). From `APPROX_FROM` rows up, a search runs in two stages:

1. a coarse pass over an int8 copy of the rows (one scale per row), a quarter of the
   bytes of the float32 matrix, scored by numkong's SIMD int8 dot-product kernels;
2. the best `rerank_depth(k)` rows of that pass are re-scored exactly in float32 and
   the top k of those are returned, with their exact cosines.

Why this and not a graph index (bench/bench_vectors.py measures all of them): an HNSW
graph (usearch) reached recall@10 0.08 at 100k random 384-d vectors with default
search depth and took minutes to build on this 2-core machine, while the int8 pass
loses nothing measurable after the float32 rerank (recall@10 = 1.0 on random data)
and is about 7x less work than the float32 product. Updates stay O(dims): a row is
encoded when it is added. numkong (SimSIMD's successor) is the SIMD kernel because
numpy has no fast int8 matrix product (it does not use BLAS for integers). Without
numkong everything is exact.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

log = logging.getLogger("cozy.vectors")

# rows in scope from which the int8 pass runs: the float32 product is bound by memory
# bandwidth (10k rows of 384-d are 15 MB), and bench/bench_memory.py measured the int8
# pass + rerank faster from 1k rows up (1.7 vs 2.0 ms hybrid p50 at 1k, 3.7 vs 5.2 at
# 10k) with identical top 5 on 380 queries at 1k/2k/5k/10k, and LoCoMo-dev recall
# identical with the int8 pass forced from 100 rows
APPROX_FROM = 2_000
_NK: Any = None
_BLAS: Any = None
_NK_LOCK = threading.Lock()


def _numkong() -> Any:
    """numkong, imported once on first use (None when it is not installed)."""
    global _NK
    if _NK is None:
        with _NK_LOCK:
            if _NK is None:
                try:
                    import numkong

                    _NK = numkong
                except ImportError:  # pragma: no cover - it is a core dependency
                    log.info("numkong not installed: vector search stays exact")
                    _NK = False
    return _NK or None


def blas_single_thread() -> Any:
    """A context in which BLAS runs on the calling thread only.

    A matrix x vector product is bound by memory bandwidth: helper threads do not
    make it faster, and on a busy machine waiting for them makes the slow queries
    several times slower (bench/bench_memory.py `floor` rows).
    """
    global _BLAS
    if _BLAS is None:
        from threadpoolctl import ThreadpoolController

        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")


# rows an int8 pass can hand on as a shortlist: a query moved a little from the first
# one (memory/rank.py's feedback vector) finds its top 50 among them (see VectorIndex)
SHORTLIST = 2000
# ...from this many rows: below, a second full int8 pass over contiguous codes costs less
# than gathering the shortlist's scattered rows (about 0.2 ms for 2,000 rows at 10k)
SHORTLIST_FROM = 8 * SHORTLIST


def rerank_depth(k: int) -> int:
    """How many coarse candidates are re-scored exactly for a top-k answer."""
    return 2 * k + 64


def quantize(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 codes and per-row scales: row ~= codes * scale (symmetric, max-abs)."""
    rows = np.asarray(rows, dtype=np.float32).reshape(-1, rows.shape[-1])
    peak = np.abs(rows).max(axis=1) if rows.size else np.zeros(len(rows), np.float32)
    scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    codes = np.rint(rows / scale[:, None]).astype(np.int8)
    scale[peak == 0] = 0.0  # an all-zero (removed) row scores 0 in both passes
    return codes, scale


class Int8Rows:
    """The int8 copy of a float32 matrix's rows, grown by doubling like its source."""

    def __init__(self, dims: int, capacity: int = 0) -> None:
        self.codes = np.zeros((capacity, dims), dtype=np.int8)
        self.scales = np.zeros(capacity, dtype=np.float32)
        self.count = 0  # rows [0, count) are encoded

    @classmethod
    def of(cls, matrix: np.ndarray) -> Int8Rows:
        out = cls(matrix.shape[1], len(matrix))
        out.set(0, matrix)
        return out

    def set(self, start: int, rows: np.ndarray) -> None:
        """Encode `rows` into positions start, start + 1, ... (growing as needed)."""
        end = start + len(rows)
        if end > len(self.codes):
            cap = max(end, 2 * len(self.codes), 16)
            codes = np.zeros((cap, self.codes.shape[1]), dtype=np.int8)
            scales = np.zeros(cap, dtype=np.float32)
            codes[: self.count] = self.codes[: self.count]
            scales[: self.count] = self.scales[: self.count]
            self.codes, self.scales = codes, scales
        codes_, scales_ = quantize(rows)
        self.codes[start:end] = codes_
        self.scales[start:end] = scales_
        self.count = max(self.count, end)

    def scores_of(self, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """`scores` of the given row numbers (a gather of a few thousand int8 rows)."""
        qc, _ = quantize(query[None, :])
        out = np.empty((1, len(rows)), dtype=np.float32)
        _numkong().cdist(qc, self.codes[rows], metric="dot", out=out)
        scores: np.ndarray = out[0]
        np.multiply(scores, self.scales[rows], out=scores)
        return scores

    def scores(self, query: np.ndarray, start: int, end: int) -> np.ndarray:
        """Rows [start, end) scored against the query, in the order of their dot products
        (the query's own positive scale is left out: it does not change the order)."""
        nk = _numkong()
        qc, _ = quantize(query[None, :])
        out = np.empty((1, end - start), dtype=np.float32)
        nk.cdist(qc, self.codes[start:end], metric="dot", out=out)
        scores: np.ndarray = out[0]
        np.multiply(scores, self.scales[start:end], out=scores)
        return scores

    @property
    def nbytes(self) -> int:
        return int(self.codes.nbytes + self.scales.nbytes)


def top_k(
    matrix: np.ndarray,
    query: np.ndarray,
    k: int,
    *,
    ranges: Sequence[tuple[int, int]] | None = None,
    keep: np.ndarray | None = None,
    coarse: Int8Rows | None = None,
    shortlist: list[np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The k rows of `matrix` most similar to `query`: (row numbers, exact scores), best first.

    `ranges`: only rows in these [start, end) ranges (default: all rows).
    `keep`: a boolean mask over the rows of `ranges`, in order (False = skip the row).
    `coarse`: the int8 copy of `matrix`; used when the scope has APPROX_FROM rows or more.
    `shortlist`: when the int8 pass runs, the row numbers of its best `SHORTLIST` rows are
    appended to this list (a later search for a nearby query can use `top_k_among`).
    """
    parts = list(ranges) if ranges is not None else [(0, len(matrix))]
    parts = [(a, b) for a, b in parts if b > a]
    total = sum(b - a for a, b in parts)
    if not total or k <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    last = max(b for _, b in parts)
    approx = (
        coarse is not None
        and coarse.count >= last
        and total >= APPROX_FROM
        and _numkong() is not None
    )
    if approx:
        assert coarse is not None
        sims = _concat([coarse.scores(query, a, b) for a, b in parts])
        depth = min(total, rerank_depth(k))
    else:
        sims = _concat([dots(matrix[a:b], query) for a, b in parts])
        depth = min(total, k)
    if keep is not None:
        sims[~keep] = -np.inf
        depth = min(depth, int(np.count_nonzero(keep)))
    if depth <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    np.negative(sims, out=sims)  # in place: no second copy of a 100k-row array
    wide = depth
    if approx and shortlist is not None:
        live = total if keep is None else int(np.count_nonzero(keep))
        wide = min(total, live, max(depth, SHORTLIST))
    best = _smallest(sims, wide) if wide < total else np.arange(total)
    if approx and shortlist is not None:  # the shortlist, and its best rows for the rerank
        shortlist.append(_row_numbers(parts, best))
        if wide > depth:
            best = best[_smallest(sims[best], depth)]
    picked = _row_numbers(parts, best)
    exact = dots(matrix[picked], query) if approx else -sims[best]  # approx: float32 rerank
    order = np.argsort(-exact, kind="stable")[:k]
    return picked[order], exact[order].astype(np.float32)


def top_k_among(
    matrix: np.ndarray,
    query: np.ndarray,
    k: int,
    rows: np.ndarray,
    coarse: Int8Rows | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """`top_k` restricted to the given row numbers (distinct, < coarse.count).

    With `coarse`, the two stages of `top_k` over those rows only: int8 scores, then
    the exact rerank of the best `rerank_depth(k)`; without, every row exactly.
    """
    if not len(rows) or k <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    depth = rerank_depth(k)
    if coarse is not None and len(rows) > depth and _numkong() is not None:
        sims = coarse.scores_of(query, rows)
        np.negative(sims, out=sims)
        rows = rows[_smallest(sims, depth)]
    exact = dots(matrix[rows], query)
    order = np.argsort(-exact, kind="stable")[:k]
    return rows[order], exact[order].astype(np.float32)


SAMPLE_STEP = 16  # `_smallest`: one value in this many estimates the cut-off


def _smallest(values: np.ndarray, depth: int) -> np.ndarray:
    """Positions of the `depth` smallest values (unordered), as `np.argpartition` gives them.

    A partition of 100k values costs about 1 ms, most of a coarse pass's own time. A
    strided sample estimates a cut-off that about 3 x `depth` values fall under; only
    those are partitioned. When fewer than `depth` fall under it (a skewed sample), the
    whole array is partitioned: the same set either way (ties at the edge aside).
    """
    rank = 3 * depth // SAMPLE_STEP + 1
    sample = values[::SAMPLE_STEP]
    if len(values) >= 8 * depth and rank < len(sample):
        cut = np.partition(sample, rank - 1)[rank - 1]
        under = np.flatnonzero(values <= cut)
        if len(under) >= depth:
            return under[np.argpartition(values[under], depth - 1)[:depth]]
    return np.argpartition(values, depth - 1)[:depth]


def _row_numbers(parts: list[tuple[int, int]], positions: np.ndarray) -> np.ndarray:
    """Positions in the concatenated ranges -> row numbers of the matrix."""
    if len(parts) == 1:
        return positions + parts[0][0]
    starts = np.array([a for a, _ in parts], dtype=np.int64)
    offsets = np.cumsum([0] + [b - a for a, b in parts[:-1]])
    part = np.searchsorted(offsets, positions, side="right") - 1
    return starts[part] + positions - offsets[part]  # type: ignore[no-any-return]


def dots(rows: np.ndarray, query: np.ndarray) -> np.ndarray:
    """rows @ query in float32: numkong's kernel when installed, else BLAS.

    numkong needs no BLAS threads nor `blas_single_thread` around it (whose thread-limit
    calls cost more than a small product): with numkong installed no search touches BLAS.
    """
    nk = _numkong()
    if nk is None or rows.dtype != np.float32 or not len(rows):
        return rows @ query  # type: ignore[no-any-return]
    out = np.empty((1, len(rows)), dtype=np.float32)
    q = np.ascontiguousarray(query, dtype=np.float32)[None, :]
    nk.cdist(q, np.ascontiguousarray(rows), metric="dot", out=out)
    result: np.ndarray = out[0]
    return result


def uses_blas() -> bool:
    """`top_k` calls BLAS (only without numkong)."""
    return _numkong() is None


def holds_gil() -> bool:
    """A search holds the GIL while it runs: numkong's kernels do (measured: a Python
    loop on another thread slows as much as beside a pure-Python busy loop), numpy's
    BLAS product does not. A worker thread then frees neither the event loop nor any
    other Python work, and its hop costs a thread wake-up and GIL hand-offs: callers
    search on their own thread (bench/bench_memory.py, hybrid at 100k memories, load
    6: p50 29 -> 18 ms wall, 13.0 -> 9.6 CPU ms, the same top 5 for 299 of 299)."""
    return _numkong() is not None


def _concat(arrays: list[np.ndarray]) -> np.ndarray:
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
