"""Knowledge engine benchmark, side by side in one run.

1. Retrieval quality on the self-written corpus in bench/data/knowledge/corpus (10
   handbook pages, 40 sections) with the hand-written questions in qa.json (one
   answering section each): recall@5 and MRR for BM25 only, vector only and hybrid.
2. Ingest throughput: Markdown without embeddings (MB/s, chunks/s) on a generated
   tree, and with local MiniLM embeddings (chunks/s) on the evaluation corpus.
3. Search latency p50/p99 at 10k and 100k chunks: synthetic chunks (Zipf-distributed
   words) with random unit vectors, queried with the 40 questions through the real
   search path (L2 result cache bypassed; the query embedding is included). Rows
   marked `old` run the same queries, interleaved, through the path before the shared
   vector index (exact float32 product, reads through aiosqlite).

4. Ingest with the local MiniLM on (`--embed-mb`, default 0.5): the time until the
   documents are keyword-searchable (what `cozy knowledge add` waits for), the
   background vectors after it, the embedder's share, and the embedder's chunks/s beside
   this machine's ceiling measured in the same run: a numpy fp32 matmul probe (the
   median of 7 products before and 7 after the embedding, same thread count) divided
   by the model's FLOPs for a chunk of the measured mean token length.

5. Keyword-searchable ingest of the same trees (`--vs-mb`, default 1 and 4 MB) in
   process (engine open) and through `cozy knowledge add DIR` in a fresh process, in
   turn, with the start-up of a command that ingests nothing (`cozy knowledge stats`)
   beside it: what the CLI adds to the chunk + index work.

Run: .venv/bin/python bench/bench_knowledge.py [--sizes 10000,100000] [--ingest-mb 8]
    [--embed-mb 0.5] [--vs-mb 1,4] [--only quality,embed,cli,vs,latency] [--precision int8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data" / "knowledge"


def table(title: str, header: list[str], rows: list[list[Any]]) -> None:
    cells = [header, *[[str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n{title}")
    for n, r in enumerate(cells):
        print("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
        if n == 0:
            print("  " + "  ".join("-" * w for w in widths))


PRECISION = ["fp32"]  # embed.options.precision of every in-process engine (--precision)


async def open_engine(home: Path, embed: bool = True) -> tuple[Any, Any]:
    from cozy.runtime import Runtime
    from cozy.settings import Settings

    home.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - setup, not measured
    (home / "engines.yaml").write_text(
        f"knowledge: {{provider: local, embed: {str(embed).lower()}}}\n"
        f"embed: {{provider: local, precision: {PRECISION[0]}}}\n"
    )
    rt = await Runtime.open(Settings(home=home), engines=False)
    return rt, await rt.engine("knowledge")


def relevant(hit: Any, item: dict[str, str]) -> bool:
    heading = str(hit.metadata.get("heading") or "")
    return str(hit.metadata["path"]).endswith(item["doc"]) and heading.endswith(item["section"])


async def quality(root: Path) -> dict[str, Any]:
    rt, k = await open_engine(root / "quality")
    try:
        start = time.perf_counter()
        report = await k.add_paths([DATA / "corpus"], user_id="bench", collection="handbook")
        took = time.perf_counter() - start
        chunks = sum(r.chunks for r in report.results)
        qa = json.loads((DATA / "qa.json").read_text())
        rows = []
        for mode in ("bm25", "vector", "hybrid"):
            found, rr = 0, 0.0
            for item in qa:
                hits = await k.search(item["q"], user_id="bench", limit=5, mode=mode)
                rank = next((i for i, h in enumerate(hits, 1) if relevant(h, item)), None)
                if rank is not None:
                    found += 1
                    rr += 1 / rank
            rows.append([mode, f"{found / len(qa):.3f}", f"{rr / len(qa):.3f}"])
        table(
            f"retrieval quality: {len(qa)} questions, {chunks} chunks (self-written corpus)",
            ["mode", "recall@5", "MRR"],
            rows,
        )
        return {"embed_chunks": chunks, "embed_seconds": took}
    finally:
        await rt.close()


WORDS = [
    "key",
    "rotation",
    "deploy",
    "release",
    "train",
    "hotfix",
    "rollback",
    "flag",
    "oncall",
    "page",
    "handover",
    "leave",
    "holiday",
    "expense",
    "travel",
    "meal",
    "laptop",
    "wifi",
    "parking",
    "printer",
    "backup",
    "migration",
    "replica",
    "connection",
    "review",
    "merge",
    "ticket",
    "refund",
    "escalation",
    "buddy",
    "account",
    "security",
    "token",
    "incident",
    "database",
    "service",
    "customer",
    "schedule",
    "policy",
    "budget",
    "approval",
    "office",
    "team",
]


def vocabulary(size: int, rng: random.Random) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    made = {"".join(rng.choice(letters) for _ in range(rng.randint(3, 10))) for _ in range(size)}
    return WORDS + sorted(made)


def sentence_maker(rng: random.Random, vocab: list[str]) -> Any:
    import itertools

    # Zipf-like word frequencies
    cumulative = list(itertools.accumulate(1 / (i + 1) for i in range(len(vocab))))

    def make(n: int) -> str:
        return " ".join(rng.choices(vocab, cum_weights=cumulative, k=n)).capitalize() + "."

    return make


async def ingest_speed(root: Path, megabytes: float) -> dict[str, float]:
    tree, n, size = write_tree(root, megabytes)
    rt, k = await open_engine(root / "ingest", embed=False)
    try:
        start, cpu = time.perf_counter(), time.process_time()
        report = await k.add_paths([tree], user_id="bench", collection="big", embed=False)
        took = time.perf_counter() - start
        cpu = time.process_time() - cpu  # every thread of this process (SQLite's too)
        chunks = sum(r.chunks for r in report.results)
        start = time.perf_counter()
        again = await k.add_paths([tree], user_id="bench", collection="big", embed=False)
        rescan = time.perf_counter() - start
        assert again.counts() == {"unchanged": n}
    finally:
        await rt.close()
    return {
        "files": n, "mb": size / 1e6, "seconds": took, "chunks": chunks, "rescan": rescan,
        "cpu": cpu,
    }  # fmt: skip


def write_tree(root: Path, megabytes: float, seed: int = 7) -> tuple[Path, int, int]:
    """A generated Markdown tree of about `megabytes` MB: (its root, files, bytes)."""
    rng = random.Random(seed)
    make = sentence_maker(rng, vocabulary(20_000, rng))
    tree = root / "tree"
    size = 0
    n = 0
    while size < megabytes * 1e6:
        parts = [f"# Document {n}\n"]
        for s in range(12):
            parts.append(f"\n## Section {s}\n")
            for _ in range(3):
                parts.append("\n" + " ".join(make(rng.randint(8, 20)) for _ in range(4)) + "\n")
        text = "".join(parts)
        path = tree / f"d{n // 100:03}" / f"doc{n:05}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        size += len(text.encode())
        n += 1
    return tree, n, size


def matmul_samples(size: int = 1024, repeats: int = 7) -> list[float]:
    """GFLOPS of `repeats` fp32 products of two size x size matrices (numpy; OpenBLAS uses
    one thread per core, as the onnxruntime embedder does), after two warm-up products
    (threads started, pages touched)."""
    import numpy as np

    a = np.random.default_rng(0).standard_normal((size, size)).astype(np.float32)
    for _ in range(2):
        a @ a
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        a @ a
        out.append(2 * size**3 / (time.perf_counter() - t) / 1e9)
    return out


def matmul_gflops(size: int = 1024, repeats: int = 7) -> float:
    """The machine's fp32 matrix-product rate right now: the median of `repeats` products.
    The median, not the best: on a shared machine the best product catches a quiet
    instant (one run read 140 and 306 GFLOPS), while the embedder it is compared with
    runs through the whole load, so a best-of probe made the ratio unfair."""
    return statistics.median(matmul_samples(size, repeats))


def matmul_per_cpu_second(size: int = 1024, repeats: int = 7) -> float:
    """GFLOPS per CPU-second of the same product on one BLAS thread: what a core-second
    computes. Other load moves it less than the wall-clock rate (it mostly changes how
    many core-seconds a process gets), though a busy hyperthread sibling still lowers
    it (measured 79-150 on this box). One thread, because OpenBLAS's threads spin while
    they wait for a preempted partner, and that spinning is CPU time."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    a = np.random.default_rng(0).standard_normal((size, size)).astype(np.float32)
    with threadpool_limits(limits=1, user_api="blas"):
        a @ a
        cpu = time.process_time()
        for _ in range(repeats):
            a @ a
        return 2 * size**3 * repeats / (time.process_time() - cpu) / 1e9


def minilm_flops(tokens: int) -> float:
    """Multiply-adds x 2 of one all-MiniLM-L6-v2 forward pass over `tokens` tokens: per
    layer the q/k/v, output and two FFN projections, and the attention products."""
    hidden, ffn, layers = 384, 1536, 6
    dense = 2 * tokens * (3 * hidden * hidden + hidden * hidden + 2 * hidden * ffn)
    attention = 2 * 2 * tokens * tokens * hidden
    return float(layers * (dense + attention))


async def ingest_with_embedder(root: Path, megabytes: float) -> dict[str, float]:
    """Markdown with the local MiniLM on: the keyword-searchable part (`add` returns),
    then the background vectors (`embed_pending`), each stage timed, and the embedder
    beside the machine's ceiling (matmul probe / the model's FLOPs per chunk)."""
    tree, files, size = write_tree(root / "embed-tree", megabytes, seed=11)
    rt, k = await open_engine(root / "embed-ingest", embed=True)
    try:
        embedder = await k.embedder()
        assert embedder is not None, k.embed_note
        await embedder.embed(["warm up"])  # the model loads outside the timings
        stages: dict[str, float] = {"embedder (model)": 0.0, "tokenize": 0.0, "cpu": 0.0}
        tokens: list[int] = []
        model = embedder._model
        encode = model.encode

        def timed_encode(texts: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            ids = model.tokenize(texts)
            stages["tokenize"] += time.perf_counter() - t
            tokens.extend(len(x) for x in ids)
            t, cpu = time.perf_counter(), time.process_time()
            out = encode(texts, **kw)
            stages["embedder (model)"] += time.perf_counter() - t
            stages["cpu"] += time.process_time() - cpu
            return out

        model.encode = timed_encode
        before = matmul_samples()
        start = time.perf_counter()
        report = await k.add_paths([tree], user_id="bench", collection="e", wait=False)
        searchable = time.perf_counter() - start
        chunks = sum(r.chunks for r in report.results)
        start = time.perf_counter()
        left = await k.embed_pending("bench", "e")
        vectors = time.perf_counter() - start
        assert left == 0
        model.encode = encode
        after = matmul_samples()
        # the median of every probe product, before and after: the load the run saw
        gflops = statistics.median(before + after)
        per_cpu = matmul_per_cpu_second()
    finally:
        await rt.close()
    mean_tokens = statistics.mean(tokens) if tokens else 0.0
    model_s = stages["embedder (model)"]
    return {
        "files": files,
        "bytes": size,
        "chunks": chunks,
        "searchable_s": searchable,
        "vectors_s": vectors,
        "model_s": model_s,
        # the model's own time includes tokenizing again (encode does): count it once
        "tokenize_s": stages["tokenize"],
        "mean_tokens": mean_tokens,
        "gflops": gflops,
        "gflops_before": statistics.median(before),
        "gflops_after": statistics.median(after),
        "probe_per_cpu": per_cpu,
        "model_cpu_s": stages["cpu"],
        "ceiling": gflops * 1e9 / minilm_flops(round(mean_tokens)) if mean_tokens else 0.0,
    }


def _detached_embedders(home: Path) -> list[int]:
    """The pids of `cozy knowledge embed` processes started for this bench's `home`."""
    import os

    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
            env = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            b"embed" in cmd
            and f"COZY_HOME={home}".encode() in env
            and int(proc.name) != os.getpid()
        ):
            pids.append(int(proc.name))
    return pids


def cli_add(
    root: Path, tree: Path, name: str, extra: list[str], *, vectors: bool, deadline: float = 3600.0
) -> dict[str, float]:
    """`cozy knowledge add TREE` in a fresh process and a fresh home: seconds and CPU
    seconds until it returns; with `vectors`, also the seconds until the detached
    embedder it starts has given every chunk a vector (the database polled every
    0.5 s); without, that embedder is stopped (by its pid) once `add` returned."""
    import os
    import resource
    import signal
    import sqlite3
    import subprocess
    import sys

    home = root / f"cli-{name}"
    home.mkdir(parents=True, exist_ok=True)
    (home / "engines.yaml").write_text("knowledge: {provider: local}\nembed: {provider: local}\n")
    env = {**os.environ, "COZY_HOME": str(home)}
    cmd = [sys.executable, "-m", "cozy", "knowledge", "add", str(tree), "-c", "cli", *extra]
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=deadline)
    out = {"returned_s": time.perf_counter() - start}
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    out["returned_cpu"] = after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime
    assert done.returncode == 0, done.stderr
    db = sqlite3.connect(home / "cozy.db")
    total = db.execute("SELECT count(*) FROM knowledge_chunks").fetchone()[0]
    out["chunks"] = total
    if vectors:
        left = total
        while left and time.perf_counter() - start < deadline:
            time.sleep(0.5)
            q = "SELECT count(*) FROM knowledge_chunks WHERE embedding IS NULL"
            left = db.execute(q).fetchone()[0]
        assert left == 0, f"{left} chunks still without a vector after {deadline:.0f} s"
        out["vectors_s"] = time.perf_counter() - start
    else:
        for pid in _detached_embedders(home):
            os.kill(pid, signal.SIGTERM)
    db.close()
    return out


def cli_ingest(root: Path, megabytes: float, big_mb: float) -> tuple[list[list[Any]], str]:
    """What a user waits for, through the real command in fresh processes (each in its
    own home): `cozy knowledge add DIR` until it returns (keyword-searchable) and until
    the detached embedder has written every vector; `add --wait` (everything done when
    it returns); a bigger tree until `add` returns; `cozy knowledge stats` alone (the
    start-up every command pays)."""
    import os
    import resource
    import subprocess
    import sys

    tree, files, size = write_tree(root / "cli-tree", megabytes, seed=13)
    bg = cli_add(root, tree, "background", [], vectors=True)
    wait = cli_add(root, tree, "wait", ["--wait"], vectors=False)
    kb = size / 1e3
    chunks = bg["chunks"]
    rows = []

    def row(label: str, secs: float, cpu: float | None, kbytes: float, n: float) -> None:
        rows.append(
            [label, f"{secs:.2f}", "-" if cpu is None else f"{cpu:.2f}",
             f"{kbytes / secs:.0f}", f"{n / secs:.1f}"]
        )  # fmt: skip

    row(f"`add` returns ({kb:.0f} KB): keyword-searchable", bg["returned_s"],
        bg["returned_cpu"], kb, chunks)  # fmt: skip
    row("  ... every vector written by the detached `cozy knowledge embed`",
        bg["vectors_s"], None, kb, chunks)  # fmt: skip
    row(f"`add --wait` returns ({kb:.0f} KB): everything done", wait["returned_s"],
        wait["returned_cpu"], kb, chunks)  # fmt: skip
    if big_mb > 0:
        big, _n, big_size = write_tree(root / "cli-big", big_mb, seed=17)
        b = cli_add(root, big, "big", [], vectors=False)
        row(f"`add` returns ({big_size / 1e6:.1f} MB): keyword-searchable", b["returned_s"],
            b["returned_cpu"], big_size / 1e3, b["chunks"])  # fmt: skip
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    env = {**os.environ, "COZY_HOME": str(root / "cli-background")}
    subprocess.run([sys.executable, "-m", "cozy", "knowledge", "stats"], env=env,
                   capture_output=True, check=True)  # fmt: skip
    secs = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    spent = after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime
    rows.append(["`cozy knowledge stats` (start-up alone)", f"{secs:.2f}", f"{spent:.2f}",
                 "-", "-"])  # fmt: skip
    return rows, f"{files} files, {kb:.0f} KB, {chunks:.0f} chunks"


async def inprocess_add(root: Path, tree: Path, name: str) -> dict[str, float]:
    """The same ingest as `cozy knowledge add TREE` (embedder configured, vectors left to
    the background job), called on an engine already open in this process: the chunk +
    index work alone, without the start-up a fresh process pays."""
    rt, k = await open_engine(root / f"inproc-{name}", embed=True)
    try:
        start, cpu = time.perf_counter(), time.process_time()
        report = await k.add_paths([tree], user_id="bench", collection="cli", wait=False)
        out = {"seconds": time.perf_counter() - start, "cpu": time.process_time() - cpu}
        out["chunks"] = sum(r.chunks for r in report.results)
    finally:
        await rt.close()
    return out


def cli_startup(home: Path) -> tuple[float, float]:
    """Seconds and CPU seconds of `cozy knowledge stats` in a fresh process: the start-up
    (imports, settings, opening the store) every command pays, with no ingest."""
    import os
    import resource
    import subprocess
    import sys

    env = {**os.environ, "COZY_HOME": str(home)}
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "cozy", "knowledge", "stats"], env=env,
                   capture_output=True, check=True, timeout=600)  # fmt: skip
    secs = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return secs, after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime


async def cli_vs_inprocess(root: Path, sizes_mb: list[float], repeats: int) -> list[list[Any]]:
    """Keyword-searchable ingest of the same tree, in process and through the CLI, in
    turn (`repeats` rounds, medians), with the CLI's start-up alone beside it: the CLI
    figure minus the start-up is the per-MB rate a bigger tree approaches."""
    rows: list[list[Any]] = []
    for mb in sizes_mb:
        tree, files, size = write_tree(root / f"vs-{mb:g}", mb, seed=19)
        got: dict[str, list[tuple[float, float]]] = {"in": [], "cli": [], "start": []}
        for r in range(repeats):
            inproc = await inprocess_add(root, tree, f"{mb:g}-{r}")
            got["in"].append((inproc["seconds"], inproc["cpu"]))
            cli = cli_add(root, tree, f"vs-{mb:g}-{r}", [], vectors=False)
            got["cli"].append((cli["returned_s"], cli["returned_cpu"]))
            got["start"].append(cli_startup(root / f"cli-vs-{mb:g}-{r}"))
        med = {k: (statistics.median(a for a, _ in v), statistics.median(b for _, b in v))
               for k, v in got.items()}  # fmt: skip
        mbytes = size / 1e6
        what = f"{mbytes:.1f} MB, {files} files"
        net = med["cli"][0] - med["start"][0]
        rows += [
            [what, "in process (`add_paths`, engine open)", f"{med['in'][0]:.2f}",
             f"{med['in'][1]:.2f}", f"{mbytes / med['in'][0]:.2f}"],
            ["", "CLI `cozy knowledge add DIR` (fresh process)", f"{med['cli'][0]:.2f}",
             f"{med['cli'][1]:.2f}", f"{mbytes / med['cli'][0]:.2f}"],
            ["", "  of which start-up (`cozy knowledge stats` alone)", f"{med['start'][0]:.2f}",
             f"{med['start'][1]:.2f}", "-"],
            ["", "  CLI minus start-up", f"{net:.2f}", "-",
             f"{mbytes / net:.2f}" if net > 0 else "-"],
        ]  # fmt: skip
    return rows


async def fill(k: Any, total: int, rng: random.Random, dims: int, model: str) -> None:
    import numpy as np

    from cozy.engines.knowledge.chunking import Chunk
    from cozy.engines.knowledge.index import NewDocument

    make = sentence_maker(rng, vocabulary(30_000, rng))
    gen = np.random.default_rng(11)
    per_doc = 250
    for d in range(0, total, per_doc):
        count = min(per_doc, total - d)
        vecs = gen.standard_normal((count, dims)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        chunks = [
            Chunk(" ".join(make(rng.randint(6, 14)) for _ in range(4)), f"Doc {d} › S{i}", i, i)
            for i in range(count)
        ]
        doc = NewDocument(
            "bench", "synthetic", f"/synthetic/doc{d:07}.md", f"Doc {d}", "markdown",
            f"{d:064x}", 0, None, chunks, [v.tobytes() for v in vecs], model,
        )  # fmt: skip
        await k.index.write_document(doc, None)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def latency(root: Path, size: int) -> list[list[Any]]:
    import os

    from cozy.engines.knowledge.search import run_search
    from cozy.engines.retrieval import vectors as vectors_mod

    rt, k = await open_engine(root / f"lat{size}")
    try:
        embedder = await k.embedder()
        assert embedder is not None, k.embed_note
        start = time.perf_counter()
        await fill(k, size, random.Random(size), embedder.dimensions, k.model_key(embedder))
        fill_s = time.perf_counter() - start
        qa = [item["q"] for item in json.loads((DATA / "qa.json").read_text())]
        gen = await k.index.generation("bench")
        start = time.perf_counter()
        await run_search(k, "warm up", "bench", None, None, 5, "hybrid", None, gen)
        warm_ms = (time.perf_counter() - start) * 1000
        t_embed = []
        for q in qa:  # embed every question once: the timings below are retrieval alone
            t0 = time.perf_counter()
            await embedder.embed([q])
            t_embed.append((time.perf_counter() - t0) * 1000)
            await run_search(k, q, "bench", None, None, 5, "vector", None, gen)
        rows = []
        approx_from = vectors_mod.APPROX_FROM
        for mode in ("bm25", "vector", "hybrid"):
            # new, and " old": the exact float32 product (before the int8 pass of
            # cozy/engines/retrieval/vectors.py), query by query in turn so machine load
            # hits both alike
            variants = ("", " old")
            times: dict[str, list[float]] = {v: [] for v in variants}
            for _ in range(3):
                for q in qa:
                    for variant in variants:
                        vectors_mod.APPROX_FROM = 10**12 if variant else approx_from
                        t0 = time.perf_counter()
                        await run_search(k, q, "bench", None, None, 5, mode, None, gen)
                        times[variant].append((time.perf_counter() - t0) * 1000)
            vectors_mod.APPROX_FROM = approx_from
            for variant, values in times.items():
                rows.append(
                    [f"{size:,}", mode + variant, f"{statistics.median(values):.1f}",
                     f"{pct(values, 0.99):.1f}"]
                )  # fmt: skip
        rows.append(
            [f"{size:,}", "(query embedding alone)", f"{statistics.median(t_embed):.1f}",
             f"{pct(t_embed, 0.99):.1f}"]
        )  # fmt: skip
        # the floor of exact vector search on this machine right now: the product alone
        model = k.model_key(embedder)
        vectors = await k.vectors.get(k.index, "bench", model, gen, embedder.dimensions)
        matrix = vectors.index.matrix
        query = matrix[0].copy()
        t_mv = []
        for _ in range(len(qa)):
            t0 = time.perf_counter()
            matrix @ query
            t_mv.append((time.perf_counter() - t0) * 1000)
        rows.append(
            [f"{size:,}", "(matrix x vector alone)", f"{statistics.median(t_mv):.1f}",
             f"{pct(t_mv, 0.99):.1f}"]
        )  # fmt: skip
        print(
            f"  [{size:,} chunks: filled in {fill_s:.1f}s, "
            f"first search (loads vectors) {warm_ms:.0f} ms; load average "
            f"{os.getloadavg()[0]:.2f} after the timed searches]"
        )
        return rows
    finally:
        await rt.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--ingest-mb", type=float, default=8.0)
    parser.add_argument(
        "--embed-mb", type=float, default=0.5, help="MB ingested with the embedder on (0: skip)"
    )
    parser.add_argument(
        "--cli-mb",
        type=float,
        default=0.5,
        help="MB ingested through `cozy knowledge add` in fresh processes (0: skip)",
    )
    parser.add_argument(
        "--cli-big-mb", type=float, default=4.0, help="MB for the keyword-only `add` (0: skip)"
    )
    parser.add_argument(
        "--vs-mb",
        default="1,4",
        help="tree sizes (MB) ingested in process and through the CLI, side by side ('': skip)",
    )
    parser.add_argument("--vs-repeats", type=int, default=3)
    parser.add_argument(
        "--only", default="", help="run only these parts: quality,ingest,embed,cli,vs,latency"
    )
    parser.add_argument(
        "--precision",
        choices=["fp32", "int8"],
        default="fp32",
        help="embed.options.precision in process (the CLI parts keep the default)",
    )
    args = parser.parse_args()
    import os

    PRECISION[0] = args.precision
    print(
        f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start; "
        f"embedder precision {args.precision}"
    )
    with tempfile.TemporaryDirectory(prefix="cozy-bench-knowledge-") as tmp:
        root = Path(tmp)
        only = {x for x in args.only.split(",") if x}

        def want(part: str) -> bool:
            return not only or part in only

        if want("quality") or want("ingest"):
            await quality_and_ingest(root, args.ingest_mb)
        if args.embed_mb > 0 and want("embed"):
            await embed_stages(root, args.embed_mb)
        if args.cli_mb > 0 and want("cli"):
            before = matmul_gflops()
            rows_cli, what = cli_ingest(root, args.cli_mb, args.cli_big_mb)
            after = matmul_gflops()
            table(
                f"what the user waits for: `cozy knowledge add DIR`, fresh processes ({what})",
                ["until", "seconds", "CPU s", "KB/s", "chunks/s"],
                rows_cli,
            )
            print(
                f"  ceiling probe beside it: numpy fp32 matmul {before:.0f} GFLOPS before, "
                f"{after:.0f} after; load average {os.getloadavg()[0]:.2f}"
            )
        if args.vs_mb and want("vs"):
            rows_vs = await cli_vs_inprocess(
                root, [float(x) for x in args.vs_mb.split(",") if x], args.vs_repeats
            )
            table(
                f"keyword-searchable ingest, the same tree in process and through the CLI "
                f"(median of {args.vs_repeats}, in turn; the goal: 1 MB/s)",
                ["tree", "path", "seconds", "CPU s", "MB/s"],
                rows_vs,
            )
            print(f"  load average {os.getloadavg()[0]:.2f}")
        if want("latency"):
            rows: list[list[Any]] = []
            for size in [int(s) for s in args.sizes.split(",") if s]:
                rows.extend(await latency(root, size))
            table(
                "search latency (ms), 40 questions x 3, L2 result cache bypassed, query "
                "vectors cached (embedding timed separately)",
                ["chunks", "mode", "p50", "p99"],
                rows,
            )
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")


async def quality_and_ingest(root: Path, ingest_mb: float) -> None:
    """Retrieval quality, then keyword-only ingest in process (parts 1 and 2)."""
    q = await quality(root)
    ing = await ingest_speed(root, ingest_mb)
    table(
        "ingest throughput",
        ["what", "amount", "seconds", "MB/s", "chunks/s"],
        [
            [
                f"Markdown, no embeddings ({ing['files']} files; {ing['cpu']:.2f} CPU s = "
                f"{ing['mb'] / ing['cpu']:.2f} MB per CPU s)",
                f"{ing['mb']:.1f} MB / {ing['chunks']} chunks",
                f"{ing['seconds']:.2f}",
                f"{ing['mb'] / ing['seconds']:.2f}",
                f"{ing['chunks'] / ing['seconds']:.0f}",
            ],
            [
                "re-run, nothing changed (hash check)",
                f"{ing['files']} files",
                f"{ing['rescan']:.2f}",
                f"{ing['mb'] / ing['rescan']:.1f}",
                "-",
            ],
            [
                "eval corpus with local MiniLM embeddings",
                f"{q['embed_chunks']} chunks",
                f"{q['embed_seconds']:.2f}",
                "-",
                f"{q['embed_chunks'] / q['embed_seconds']:.1f}",
            ],
        ],
    )


async def embed_stages(root: Path, embed_mb: float) -> None:
    """Part 4: ingest with the local MiniLM on, stage by stage, beside the ceiling."""
    e = await ingest_with_embedder(root, embed_mb)
    total = e["searchable_s"] + e["vectors_s"]
    kb = e["bytes"] / 1e3
    table(
        f"ingest with the local MiniLM on ({e['files']} files, {kb:.0f} KB, "
        f"{e['chunks']} chunks of {e['mean_tokens']:.0f} tokens on average)",
        ["stage", "seconds", "share", "KB/s", "chunks/s"],
        [
            ["keyword-searchable (walk, hash, chunk, write: `add` returns)",
             f"{e['searchable_s']:.2f}", f"{e['searchable_s'] / total:.0%}",
             f"{kb / e['searchable_s']:.0f}", f"{e['chunks'] / e['searchable_s']:.0f}"],
            ["vectors (background job), of which:", f"{e['vectors_s']:.2f}",
             f"{e['vectors_s'] / total:.0%}", f"{kb / e['vectors_s']:.1f}",
             f"{e['chunks'] / e['vectors_s']:.1f}"],
            ["  embedder forward passes (incl. tokenizing)", f"{e['model_s']:.2f}",
             f"{e['model_s'] / total:.0%}", f"{kb / e['model_s']:.1f}",
             f"{e['chunks'] / e['model_s']:.1f}"],
            ["  reads, writes, event loop", f"{e['vectors_s'] - e['model_s']:.2f}",
             f"{(e['vectors_s'] - e['model_s']) / total:.0%}", "-", "-"],
            ["everything", f"{total:.2f}", "100%", f"{kb / total:.1f}",
             f"{e['chunks'] / total:.1f}"],
        ],
    )  # fmt: skip
    rate = e["chunks"] / e["model_s"]
    print(
        f"  ceiling: numpy fp32 matmul {e['gflops']:.0f} GFLOPS (median of 14 products; "
        f"medians before / after the run: {e['gflops_before']:.0f} / "
        f"{e['gflops_after']:.0f}; {os.cpu_count()} threads, as the embedder) / "
        f"{minilm_flops(round(e['mean_tokens'])) / 1e9:.2f} GFLOP per chunk = "
        f"{e['ceiling']:.1f} chunks/s; the embedder: {rate:.1f} chunks/s = "
        f"{rate / e['ceiling']:.2f} x the ceiling"
    )
    # the same ratio in work per CPU-second, which a busy machine moves less
    done = e["chunks"] * minilm_flops(round(e["mean_tokens"])) / 1e9 / e["model_cpu_s"]
    print(
        f"  per CPU-second (less load-sensitive): the probe {e['probe_per_cpu']:.0f} GFLOPS "
        f"(one thread), "
        f"the embedder {done:.0f} GFLOPS ({e['model_cpu_s']:.1f} CPU s) = "
        f"{done / e['probe_per_cpu']:.2f} x; load average {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
