"""Vector top-k at 1k/10k/100k random unit vectors: exact float32 (the old path) against
the int8 coarse pass + float32 rerank (cozy/engines/retrieval/vectors.py), side by side.

Queries alternate between the methods so machine load hits them alike. Prints p50/p99
latency, recall@10 and @50 against exact, memory, build cost and the cost of adding
one row. Optional candidates run when importable (not cozy dependencies):
faiss-cpu (IndexScalarQuantizer 8-bit + the same rerank) and usearch (HNSW graph).

    .venv/bin/python bench/bench_vectors.py [--sizes 1000,10000,100000] [--queries 100]
        [--hnsw-max 20000]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np

from cozy.engines.retrieval import vectors
from cozy.engines.retrieval.vectors import Int8Rows, blas_single_thread, top_k

DIMS = 384
Search = Callable[[np.ndarray, int], np.ndarray]


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def unit(rows: int, seed: int) -> np.ndarray:
    m = np.random.default_rng(seed).standard_normal((rows, DIMS)).astype(np.float32)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    return m


def rerank(matrix: np.ndarray, q: np.ndarray, cand: np.ndarray, k: int) -> np.ndarray:
    cand = cand[cand >= 0]
    s = matrix[cand] @ q
    return cand[np.argsort(-s)[:k]]


def candidates(matrix: np.ndarray, hnsw_max: int) -> dict[str, tuple[Search, float, int]]:
    """name -> (search, build seconds, extra bytes beyond the float32 matrix)."""
    out: dict[str, tuple[Search, float, int]] = {}

    def exact(q: np.ndarray, k: int) -> np.ndarray:
        with blas_single_thread():
            return top_k(matrix, q, k)[0]

    out["exact float32 (old)"] = (exact, 0.0, 0)
    t = time.perf_counter()
    coarse = Int8Rows.of(matrix)
    built = time.perf_counter() - t

    def two_stage(q: np.ndarray, k: int) -> np.ndarray:
        with blas_single_thread():
            return top_k(matrix, q, k, coarse=coarse)[0]

    label = "int8 + rerank (new)" if len(matrix) >= vectors.APPROX_FROM else "new (exact: small)"
    out[label] = (two_stage, built, coarse.nbytes)
    try:
        import faiss

        faiss.omp_set_num_threads(1)
        t = time.perf_counter()
        sq = faiss.IndexScalarQuantizer(
            DIMS, faiss.ScalarQuantizer.QT_8bit_uniform, faiss.METRIC_INNER_PRODUCT
        )
        sq.train(matrix)
        sq.add(matrix)
        built = time.perf_counter() - t

        def faiss_sq8(q: np.ndarray, k: int) -> np.ndarray:
            return rerank(matrix, q, sq.search(q[None], 2 * k + 64)[1][0], k)

        out["faiss SQ8 + rerank"] = (faiss_sq8, built, len(matrix) * DIMS)
    except ImportError:
        pass
    if len(matrix) <= hnsw_max:
        try:
            from usearch.index import Index

            t = time.perf_counter()
            hnsw = Index(ndim=DIMS, metric="ip", dtype="f16")
            hnsw.add(np.arange(len(matrix)), matrix, threads=2)
            built = time.perf_counter() - t

            def usearch_hnsw(q: np.ndarray, k: int) -> np.ndarray:
                return rerank(matrix, q, np.asarray(hnsw.search(q, 2 * k).keys), k)

            out["usearch HNSW f16 + rerank"] = (usearch_hnsw, built, int(hnsw.memory_usage))
        except ImportError:
            pass
    return out


def add_cost(matrix: np.ndarray, rounds: int = 200) -> tuple[float, float]:
    """p50 ms to add one row to the memory index, and to int8-encode one row."""
    from cozy.engines.memory.search import VectorIndex

    idx = VectorIndex(1, [f"m{i}" for i in range(len(matrix))], matrix)
    coarse = Int8Rows.of(matrix)
    extra = unit(rounds, 99)
    adds, encodes = [], []
    for i, v in enumerate(extra):
        t = time.perf_counter()
        idx.add(f"x{i}", v)
        adds.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        coarse.set(coarse.count, v[None, :])
        encodes.append((time.perf_counter() - t) * 1000)
    return pct(adds, 0.5), pct(encodes, 0.5)


def run(size: int, queries: int, hnsw_max: int) -> None:
    matrix = unit(size, 1)
    qs = unit(queries, 2)
    methods = candidates(matrix, hnsw_max)
    truth = {k: [top_k(matrix, q, k)[0] for q in qs] for k in (10, 50)}
    times: dict[str, list[float]] = {m: [] for m in methods}
    found: dict[str, dict[int, int]] = {m: {10: 0, 50: 0} for m in methods}
    for n, q in enumerate(qs):
        for name, (fn, _, _) in methods.items():  # alternate: same load for every method
            t = time.perf_counter()
            got = fn(q, 50)
            times[name].append((time.perf_counter() - t) * 1000)
            for k in (10, 50):
                found[name][k] += len(set(got[:k].tolist()) & set(truth[k][n].tolist()))
    load = os.getloadavg()[0]
    print(f"\n{size:,} rows x {DIMS} dims, {queries} queries, load average {load:.2f}")
    print(
        f"  {'method':<28} {'p50 ms':>7} {'p99 ms':>7} {'recall@10':>9} {'recall@50':>9} "
        f"{'build s':>8} {'+MB':>6}"
    )
    base = pct(times["exact float32 (old)"], 0.5)
    for name, (_, built, extra) in methods.items():
        p50 = pct(times[name], 0.5)
        r10 = found[name][10] / (10 * queries)
        r50 = found[name][50] / (50 * queries)
        print(
            f"  {name:<28} {p50:7.2f} {pct(times[name], 0.99):7.2f} {r10:9.4f} {r50:9.4f} "
            f"{built:8.2f} {extra / 1e6:6.1f}   ({base / p50:.1f}x)"
        )
    add_ms, encode_ms = add_cost(matrix)
    print(
        f"  float32 matrix {matrix.nbytes / 1e6:.1f} MB; add one row to the memory index "
        f"p50 {add_ms:.4f} ms, int8-encode one row p50 {encode_ms:.4f} ms"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--hnsw-max", type=int, default=20_000, help="largest size to build HNSW")
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} CPUs; load average at start {os.getloadavg()}")
    for size in [int(s) for s in args.sizes.split(",") if s]:
        run(size, args.queries, args.hnsw_max)
    print(f"\nload average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
