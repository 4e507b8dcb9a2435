"""memory.local speed: search p50/p99 at 1k/10k/100k memories, ingest rate, orchestrator
overhead with the local engines on at 10k memories. Prints tables; asserts nothing.

    .venv/bin/python bench/bench_memory.py [--sizes 1000,10000,100000] [--queries 200]
        [--before DIR [--after DIR2] [--rounds N]]

`--before DIR` runs the same measurements with the cozy package found in DIR
(e.g. `git archive <rev> cozy tests/helpers.py | tar -x -C DIR`) and with this tree
(or `--after DIR2`), each in a subprocess on the same machine, alternating for
`--rounds N` rounds, and prints the medians side by side with the ratio before/after
(the load average is a row, and each round's load goes to stderr).

Search timings exclude the query embedding (its vector is computed once up front and
cached, as the engine does for repeated queries); the embedding cost is measured on
its own line. Memories for the large stores get random unit vectors (embedding 100k
texts with MiniLM would take an hour and measures the embedder, not the search).
Rows marked `exact` run the same queries, interleaved, with the exact float32 product
(cozy/engines/retrieval/vectors.py with its int8 threshold out of reach) instead of the int8 pass +
rerank; they run second, so they may find their candidate rows already cached.
The orchestrator runs with every local engine on (memory, profile, knowledge) and
alternates turns whose query is embedded inside the turn with turns whose query
vector is already cached: the `(no embedding)` rows leave the embedding model out.
The prepare / persist / `overhead minus context` rows are the stages around the
engines' searches (the session and message writes, the turn hooks); the context
stage is mostly the memory search at 10k rows.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

_WORDS = (
    "tea coffee jazz guitar lisbon paris sister brother dog cat garden bike running chess "
    "python rust music painting novel hiking beach mountain kitchen pasta sushi doctor "
    "teacher startup meeting birthday wedding holiday train flight camera piano violin "
    "football tennis yoga book movie concert museum library school office project deadline"
)
WORDS = _WORDS.split()


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


# a Zipf-like vocabulary: a few common words, a long tail (as in real chat text)
VOCAB = WORDS + [f"{a}{b}" for a in ("ka", "lo", "mi", "ru", "te", "zo", "bi", "ne") for b in WORDS]
ZIPF = [1.0 / (r + 1) for r in range(len(VOCAB))]


def sentence(rng: random.Random) -> str:
    words = rng.choices(VOCAB, weights=ZIPF, k=rng.randint(6, 14))
    return "The user " + " ".join(words)


async def fill(store: Any, user: str, n: int, dims: int, rng: random.Random) -> None:
    import sqlalchemy as sa

    from cozy.engines.memory.repo import to_blob
    from cozy.engines.memory.texthash import text_hash
    from cozy.storage.schema import new_id
    from cozy.storage.tables.memory import memories, memory_versions

    vecs = np.random.default_rng(1).standard_normal((n, dims)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    now = time.time()
    for start in range(0, n, 5000):
        rows: list[dict[str, Any]] = []
        for i in range(start, min(n, start + 5000)):
            text = sentence(rng)
            rows.append(
                {
                    "id": new_id("mem"),
                    "user_id": user,
                    "kind": "fact" if i % 3 == 0 else "turn",
                    "text": text,
                    "text_hash": text_hash(text),
                    "status": "active",
                    "source_message_ids": [],
                    "occurred_at": now - i,
                    "created_at": now,
                    "updated_at": now,
                    "embedding": to_blob(vecs[i]),
                    "embed_model": "bench",
                    "metadata": {},
                }
            )
        async with store.engine.begin() as conn:
            await conn.execute(sa.insert(memories), rows)
    async with store.engine.begin() as conn:
        await conn.execute(sa.insert(memory_versions).values(user_id=user, version=1))


# the hybrid top 5 of every query by store size: `--before` checks that both trees agree
TOPS: dict[str, list[list[str]]] = {}


async def bench_search(sizes: list[int], queries: int) -> dict[str, float]:
    import importlib
    import os

    from cozy.engines.base import EngineContext
    from cozy.engines.memory.local import LocalMemory

    vectors: Any = None  # a --before tree may predate the shared vector index
    for name in ("cozy.engines.retrieval.vectors", "cozy.engines.vectors"):
        try:  # the retrieval kernel's module, or where it lived before (#17)
            vectors = importlib.import_module(name)
            break
        except ImportError:
            continue
    from cozy.storage.store import Store

    rng = random.Random(7)
    out: dict[str, float] = {}
    approx_from = vectors.APPROX_FROM if vectors is not None else 0
    for n in sizes:
        tmp = Path(tempfile.mkdtemp(prefix="bench-mem-"))
        store = await Store.open(f"sqlite:///{tmp / 'b.db'}")
        await fill(store, "u", n, 384, rng)
        mem = LocalMemory({"embeddings": True}, EngineContext(store=store))
        cached = prime_query_vectors(mem)  # vectors come from the cache
        qs = [" ".join(rng.choices(VOCAB, weights=ZIPF, k=4)) for _ in range(queries)]
        qv = np.random.default_rng(2).standard_normal((queries, 384)).astype(np.float32)
        qv /= np.linalg.norm(qv, axis=1, keepdims=True)
        for q, v in zip(qs, qv, strict=True):
            cached(q, v.tolist())
        await mem.search(qs[0], user_id="u", limit=5)  # load the matrix once
        mat = np.ascontiguousarray((await mem.repo.vectors("u"))[1], dtype=np.float32)
        floor, floor_cpu = [], []
        for v in qv:  # the numpy floor: one matrix x vector product and the top 50
            t, c = time.perf_counter(), time.process_time()
            np.argpartition(-(mat @ v), 50)[:50]  # BLAS default threads, no cozy code
            floor.append((time.perf_counter() - t) * 1000)
            floor_cpu.append((time.process_time() - c) * 1000)
        out[f"search {n:>6} floor   p50 ms"] = pct(floor, 50)
        # CPU ms (every thread of this process): what a busy machine inflates least
        out[f"search {n:>6} floor   p50 CPU ms"] = pct(floor_cpu, 50)
        for mode in ("hybrid", "keyword", "vector"):
            # vectors: the exact float32 product (old) and the int8 pass + rerank (new),
            # query by query in turn so machine load hits both alike
            variants = ("", " exact") if mode != "keyword" and vectors is not None else ("",)
            times: dict[str, list[float]] = {v: [] for v in variants}
            cpu: dict[str, list[float]] = {v: [] for v in variants}
            for q in qs:
                for variant in variants:
                    if vectors is not None:
                        vectors.APPROX_FROM = 10**12 if variant else approx_from
                    t, c = time.perf_counter(), time.process_time()
                    hits = await mem.search(q, user_id="u", limit=5, mode=mode)
                    times[variant].append((time.perf_counter() - t) * 1000)
                    cpu[variant].append((time.process_time() - c) * 1000)
                    if mode == "hybrid" and not variant:  # ids differ between runs, texts not
                        TOPS.setdefault(str(n), []).append([h.text for h in hits])
            if vectors is not None:
                vectors.APPROX_FROM = approx_from
            for variant, values in times.items():
                label = f"{mode}{variant}"
                out[f"search {n:>6} {label:<13} p50 ms"] = pct(values, 50)
                out[f"search {n:>6} {label:<13} p99 ms"] = pct(values, 99)
                out[f"search {n:>6} {label:<13} p50 CPU ms"] = pct(cpu[variant], 50)
        out[f"search {n:>6} load average"] = os.getloadavg()[0]
        await store.close()
    return out


async def bench_ingest(count: int) -> dict[str, float]:
    from cozy.engines.base import EngineContext
    from cozy.engines.embed.local import LocalEmbedder
    from cozy.engines.memory.local import LocalMemory
    from cozy.engines.memory.types import TurnInput
    from cozy.storage.store import Store

    rng = random.Random(3)
    out: dict[str, float] = {}
    emb = LocalEmbedder({})
    await emb.initialize()
    t = time.perf_counter()
    await emb.embed(["what did I say about my sister?"])
    single_ms = (time.perf_counter() - t) * 1000
    for label, embedder in (("turns, with MiniLM vectors", emb), ("turns, keyword only", None)):
        tmp = Path(tempfile.mkdtemp(prefix="bench-ing-"))
        store = await Store.open(f"sqlite:///{tmp / 'i.db'}")
        mem = LocalMemory(
            {"embeddings": embedder is not None}, EngineContext(store=store, embedder=embedder)
        )
        texts = [sentence(rng) for _ in range(count)]
        t = time.perf_counter()
        for start in range(0, count, 64):
            batch = [
                TurnInput(f"m{i}", "user", texts[i]) for i in range(start, min(count, start + 64))
            ]
            await mem.index_turns(batch, user_id="u")
        s = time.perf_counter() - t
        out[f"ingest {label} /s"] = count / s
        await store.close()
    out["MiniLM one query embedding ms"] = single_ms
    return out


async def bench_orchestrator(turns: int) -> dict[str, float]:
    import os

    from helpers import collect, open_runtime, req

    from cozy.core.events import Done
    from cozy.testing import FakeModelServer

    out: dict[str, float] = {}
    with FakeModelServer() as fake:
        home = Path(tempfile.mkdtemp(prefix="bench-orch-"))
        extra = (
            "memory: {provider: local}\nprofile: {provider: local}\n"
            "knowledge: {provider: local}\n"
            f"embed: {{provider: openai, base_url: '{fake.url}/v1', model: e, api_key: x, "
            "dimensions: 384}\n"
        )
        rt = await open_runtime(home, fake.url, extra)
        try:
            await fill(rt.store, "local", 10_000, 384, random.Random(5))
            await rt.engines["profile"].set_slot("local", "basic_info.name", "Ada")  # type: ignore[attr-defined]
            mem: Any = rt.engines["memory"]
            # turns alternate: the query embedded inside the turn (a fresh query) and
            # embedded just before it (the engine's query-vector cache), so the second
            # kind is the overhead without the embedding model's time
            times: dict[str, dict[str, list[float]]] = {
                k: {"overhead": [], "context": [], "prepare": [], "persist": []}
                for k in ("with", "without")
            }
            for i in range(turns):
                for kind in ("with", "without"):
                    query = f"tell me about chess {i}{kind[0]}"
                    # this tree's engine, or a `--before` one older than the retrieval kernel
                    warm = getattr(mem, "query_vector", None) or getattr(mem, "_query_vector", None)
                    if kind == "without" and warm is not None:
                        await warm(query)
                    events = await collect(rt.orchestrator.run(req(query)))
                    done = events[-1]
                    assert isinstance(done, Done), done
                    tm = done.timings
                    times[kind]["overhead"].append(tm["total"] - tm["generate"])
                    for stage in ("context", "prepare", "persist"):
                        times[kind][stage].append(tm[stage])
            for kind, label in (("with", ""), ("without", " (no embedding)")):
                overhead, context = times[kind]["overhead"], times[kind]["context"]
                out[f"orchestrator 10k: total minus generate{label} p50 ms"] = pct(overhead, 50)
                out[f"orchestrator 10k: total minus generate{label} p99 ms"] = pct(overhead, 99)
                out[f"orchestrator 10k: context stage{label} p50 ms"] = pct(context, 50)
                out[f"orchestrator 10k: mean overhead{label} ms"] = statistics.mean(overhead)
                if kind == "without":  # the stages around the engines' searches
                    for stage in ("prepare", "persist"):
                        out[f"orchestrator 10k: {stage} stage{label} p50 ms"] = pct(
                            times[kind][stage], 50
                        )
                    outside = [o - c for o, c in zip(overhead, context, strict=True)]
                    out[f"orchestrator 10k: overhead minus context{label} p50 ms"] = pct(
                        outside, 50
                    )
            out["orchestrator 10k: load average"] = os.getloadavg()[0]
        finally:
            await rt.close()
    return out


def show(after: dict[str, float], before: dict[str, float] | None) -> None:
    width = max(len(k) for k in after)
    if before is None:
        for key, value in after.items():
            print(f"{key:<{width}} {value:>10.2f}")
        return
    print(f"{'measure':<{width}} {'before':>10} {'after':>10} {'before/after':>13}")
    for key, value in after.items():
        old = before.get(key)
        ratio = f"{old / value:>12.1f}x" if old is not None and value > 0 else f"{'-':>13}"
        old_s = f"{old:>10.2f}" if old is not None else f"{'-':>10}"
        print(f"{key:<{width}} {old_s} {value:>10.2f} {ratio}")


def prime_query_vectors(mem: Any) -> Any:
    """A function caching a query's vector in `mem` (and an embedder stand-in), for this
    tree's engine and for a `--before` tree older than the shared retrieval kernel."""
    if hasattr(mem, "embeddings"):
        mem.embeddings.use(object())
        return mem.embeddings.remember
    mem._embedder = object()
    return mem._qcache.__setitem__


def _tree(path: str) -> Path:
    return Path(path).resolve()


async def _child(tree: Path | None, argv: list[str]) -> dict[str, float]:
    """One measuring run in a subprocess, with the cozy package of `tree` (None: ours)."""
    import json
    import os
    import subprocess

    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = str(tree)  # absolute: see _tree
    proc = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, __file__, *argv, "--json"],
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode:
        sys.exit(f"the run with {tree or 'this tree'} failed:\n{proc.stderr[-3000:]}")
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    for n, tops in out.pop("top5", {}).items():
        TOPS.setdefault(f"{tree or 'after'} {n}", tops)  # the first round's
    return out


def _median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in runs if k in r) for k in runs[0]}


async def main() -> None:
    ap = argparse.ArgumentParser(description="memory.local speed")
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--ingest", type=int, default=512)
    ap.add_argument("--turns", type=int, default=40)
    ap.add_argument("--skip", default="", help="comma list of: search, ingest, orchestrator")
    ap.add_argument("--before", type=_tree, help="a directory holding the old cozy package")
    ap.add_argument("--after", type=_tree, help="a directory holding the new one (default: ours)")
    ap.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="with --before: alternate before/after runs this many times (medians shown)",
    )
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    import logging
    import os

    logging.disable(logging.INFO)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    skip = set(args.skip.split(","))
    if args.before is not None and not args.json:
        # before and after each in their own subprocess, in turn, so machine load
        # drifting during the run hits both alike; every figure is the median of rounds
        argv, drop = [], {"--before", "--after", "--rounds"}
        it = iter(sys.argv[1:])
        for a in it:
            if a.split("=", 1)[0] in drop:
                if "=" not in a:
                    next(it, None)
                continue
            argv.append(a)
        befores: list[dict[str, float]] = []
        afters: list[dict[str, float]] = []
        for r in range(max(1, args.rounds)):
            if r % 2:  # who goes first changes every round
                afters.append(await _child(args.after, argv))
                befores.append(await _child(args.before, argv))
            else:
                befores.append(await _child(args.before, argv))
                afters.append(await _child(args.after, argv))
            print(
                f"round {r + 1}: load {os.getloadavg()[0]:.2f}; overhead p50 (no embedding) "
                f"before {_no_emb(befores[-1])} after {_no_emb(afters[-1])}",
                file=sys.stderr,
            )
        show(_median_of(afters), _median_of(befores))
        for n in sizes:
            old, new = TOPS.get(f"{args.before} {n}", []), TOPS.get(f"{args.after or 'after'} {n}")
            same = sum(a == b for a, b in zip(old, new or [], strict=False))
            print(f"hybrid top 5 at {n}: the same texts in order for {same} of {len(old)} queries")
        return
    after: dict[str, float] = {}
    if "search" not in skip:
        after.update(await bench_search(sizes, args.queries))
    if "ingest" not in skip:
        after.update(await bench_ingest(args.ingest))
    if "orchestrator" not in skip:
        after.update(await bench_orchestrator(args.turns))
    if args.json:
        import json

        print(json.dumps({**after, "top5": TOPS}))
        return
    show(after, None)


def _no_emb(figures: dict[str, float]) -> str:
    v = figures.get("orchestrator 10k: total minus generate (no embedding) p50 ms")
    return "-" if v is None else f"{v:.2f} ms"


if __name__ == "__main__":
    asyncio.run(main())
