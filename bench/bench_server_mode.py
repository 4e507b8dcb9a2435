"""Server mode on the real PostgreSQL and Redis. Prints tables; asserts nothing.

    .venv/bin/python bench/bench_server_mode.py [--requests 1280] [--concurrency 64]
        [--sizes 10000,100000] [--queries 100] [--skip-throughput] [--skip-search]

1. Throughput of 1 vs 2 `cozy serve` instances sharing Postgres + Redis, at
   concurrency 64, non-streaming chat completions against the fake model server
   (run as its own process, zero latency), API-key auth and shared rate-limit
   counters on (limits high enough never to trigger). Requests go round-robin.
2. Memory and knowledge search p50/p99 with N vectors in ONE scope (one user /
   one collection): Postgres (full-text + vectors in the rows, cosine in the
   instance) vs the local SQLite engine, same data, same queries. Vectors are
   random unit vectors (the search, not the embedder, is measured); query vectors
   are computed once up front (the engines cache them too). Turns get their
   neighbours' text as `context` (as memory/turns.py indexes them); each database is
   analyzed after the fill (what autovacuum does shortly after a bulk load).
3. Postgres keyword search, new vs baseline on the same database, alternating per
   query: the planned statement (retrieval/keyword.py, for memory and knowledge) vs
   the statements before it (all words `&`, then any word `|` ranked among the first
   2000 matches; `baseline_*` below).

Needs PostgreSQL at 127.0.0.1:5432 (db `test`, trust) and Redis at 127.0.0.1:6379;
a fresh database is created and dropped, Redis db 15 is flushed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

from bench_memory import VOCAB, ZIPF  # noqa: E402 - the memory bench's corpus generator
from bench_memory import fill as fill_memories  # noqa: E402

PG_ADMIN = os.environ.get("COZY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = "redis://127.0.0.1:6379/15"
PY = sys.executable


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


def table(title: str, header: list[str], rows: list[list[Any]]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    print(f"\n{title}")
    print("  ".join(str(h).rjust(w) for h, w in zip(header, widths, strict=True)))
    for row in rows:
        print("  ".join(str(x).rjust(w) for x, w in zip(row, widths, strict=True)))


async def admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited")
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


# --- 1. throughput ------------------------------------------------------------
async def load(urls: list[str], key: str, total: int, concurrency: int) -> dict[str, float]:
    times: list[float] = []
    errors = 0
    counter = iter(range(total))
    body = {"model": "cozy/assistant", "messages": [{"role": "user", "content": "hello"}]}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        headers={"Authorization": f"Bearer {key}"}, timeout=60, limits=limits
    ) as client:

        async def worker() -> None:
            nonlocal errors
            for i in counter:
                t = time.perf_counter()
                res = await client.post(f"{urls[i % len(urls)]}/v1/chat/completions", json=body)
                times.append((time.perf_counter() - t) * 1000)
                errors += res.status_code != 200

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - start
    return {"rps": total / wall, "p50": pct(times, 50), "p99": pct(times, 99), "errors": errors}


def throughput(total: int, concurrency: int) -> None:
    name = f"cozy_bench_{uuid.uuid4().hex[:8]}"
    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    pg = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    home = Path(tempfile.mkdtemp(prefix="bench-sm-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        import redis

        redis.Redis.from_url(REDIS).flushdb()
        fport = free_port()
        procs.append(
            subprocess.Popen(
                [PY, "-m", "cozy.testing", "--port", str(fport)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        wait_http(f"http://127.0.0.1:{fport}/v1/models", procs[0])
        (home / "engines.yaml").write_text(
            "ai:\n  provider: ollama\n  model: fake-model\n"
            f"  providers:\n    ollama: {{host: 'http://127.0.0.1:{fport}', max_retries: 0}}\n"
            "memory: {provider: none}\nprofile: {provider: none}\nknowledge: {provider: none}\n"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("COZY_")}
        env.update(
            COZY_HOME=str(home), COZY_CONFIG=str(home / "engines.yaml"), COZY_DATABASE_URL=pg,
            COZY_REDIS_URL=REDIS, COZY_SERVER_RATE_LIMIT_RPM="1000000",
            COZY_SERVER_RATE_LIMIT_TPM="0", COZY_SERVER_IP_RATE_LIMIT_RPM="0",
            COZY_LOG_LEVEL="WARNING",
        )  # fmt: skip
        subprocess.run([PY, "-m", "cozy", "migrate"], env=env, check=True, capture_output=True)
        key = subprocess.run(
            [PY, "-m", "cozy", "keys", "create", "--user", "bench"],
            env=env, check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
        urls: list[str] = []
        rows = []
        base: float | None = None
        for n in (1, 2):
            port = free_port()
            proc = subprocess.Popen(
                [PY, "-m", "cozy", "serve", "--port", str(port)],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            procs.append(proc)
            urls.append(f"http://127.0.0.1:{port}")
            wait_http(urls[-1] + "/health", proc)
            asyncio.run(load(urls, key, concurrency * 2, concurrency))  # warm up
            r = asyncio.run(load(urls, key, total, concurrency))
            base = base or r["rps"]
            rows.append(
                [n, concurrency, total, f"{r['rps']:.0f}", f"{r['rps'] / base:.2f}x",
                 f"{r['p50']:.0f}", f"{r['p99']:.0f}", int(r["errors"])]
            )  # fmt: skip
        table(
            f"chat completions, 1 vs 2 instances (Postgres + Redis, fake upstream; "
            f"{os.cpu_count()} CPUs shared by load, upstream and instances)",
            ["instances", "concurrency", "requests", "req/s", "vs 1", "p50 ms", "p99 ms", "errors"],
            rows,
        )
    finally:
        for p in procs:
            p.kill()
            p.wait()
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# --- 2. search ------------------------------------------------------------------
CONTEXT = (  # each turn's neighbours (by time) as its keyword context, like turns.py
    "UPDATE memories SET context = n.ctx FROM (SELECT id, coalesce(lag(text) OVER w, '') "
    "|| ' ' || coalesce(lead(text) OVER w, '') AS ctx FROM memories "
    "WINDOW w AS (ORDER BY occurred_at)) AS n WHERE memories.id = n.id AND memories.kind = 'turn'"
)


async def baseline_memory_keyword(store: Any, user: str, query: str, limit: int) -> list[Any]:
    """The memory statement before the planned one (all words, then any word, cap 2000)."""
    from cozy.engines.retrieval.terms import query_terms

    terms = query_terms(query)
    out: list[Any] = []
    for op in ("&", "|"):
        sql = (
            "SELECT c.id, ts_rank_cd(c.tsv, q.q) AS s FROM to_tsquery('english', :q) AS q(q), "
            "LATERAL (SELECT m.id, m.tsv FROM memories m WHERE m.user_id = :u AND m.status = "
            "'active' AND m.tsv @@ q.q LIMIT 2000) c ORDER BY s DESC, c.id DESC LIMIT :k"
        )
        params = {"q": f" {op} ".join(terms), "u": user, "k": limit}
        out += [r for r in await store.read(sa_text(sql).bindparams(**params)) if r not in out]
        if len(out) >= limit or len(terms) == 1:
            break
    return out[:limit]


async def baseline_knowledge_keyword(index: Any, user: str, query: str, k: int) -> list[Any]:
    """The knowledge statement before the planned one (all words, then any word, cap 2000)."""
    from cozy.engines.retrieval.terms import DOC_STOPWORDS, query_terms

    terms = query_terms(query, stopwords=DOC_STOPWORDS, fallback=True)
    out: list[Any] = []
    for op in ("&", "|"):
        sql = (
            "SELECT m.id, ts_rank(m.tsv, q.q) AS s FROM to_tsquery('english', :q) AS q(q), "
            "LATERAL (SELECT c.id, c.tsv FROM knowledge_chunks c WHERE c.user_id = :u "
            "AND c.tsv @@ q.q LIMIT 2000) m ORDER BY s DESC, m.id DESC LIMIT :k"
        )
        params = {"q": f" {op} ".join(terms), "u": user, "k": k}
        out += [r for r in await index.read(sa_text(sql), params) if r not in out]
        if len(out) >= k or len(terms) == 1:
            break
    return out[:k]


def sa_text(sql: str) -> Any:
    import sqlalchemy as sa

    return sa.text(sql)


async def side_by_side(new: Any, old: Any, queries: list[str]) -> dict[str, tuple[float, float]]:
    """p50/p99 of two search functions, alternating per query (same data, same load)."""
    await new(queries[0])  # warm both (the new one caches term counts)
    await old(queries[0])
    times: dict[str, list[float]] = {"new": [], "baseline": []}
    for q in queries:
        for name, fn in (("baseline", old), ("new", new)):
            t = time.perf_counter()
            await fn(q)
            times[name].append((time.perf_counter() - t) * 1000)
    return {name: (pct(ts, 50), pct(ts, 99)) for name, ts in times.items()}


async def memory_search(url: str, n: int, queries: int) -> dict[str, tuple[float, float]]:
    from cozy.engines.base import EngineContext
    from cozy.engines.memory.local import LocalMemory
    from cozy.storage.store import Store

    rng = random.Random(7)
    store = await Store.open(url)
    try:
        await fill_memories(store, "u", n, 384, rng)
        async with store.engine.begin() as conn:
            await conn.execute(sa_text(CONTEXT))
        if store.engine.dialect.name == "postgresql":
            async with store.engine.begin() as conn:
                await conn.execute(sa_text("ANALYZE memories"))
        mem = LocalMemory({"embeddings": True}, EngineContext(store=store))
        mem.embeddings.use(object())  # query vectors from the cache
        qs = [" ".join(rng.choices(VOCAB, weights=ZIPF, k=4)) for _ in range(queries)]
        qv = np.random.default_rng(2).standard_normal((queries, 384)).astype(np.float32)
        qv /= np.linalg.norm(qv, axis=1, keepdims=True)
        for q, v in zip(qs, qv, strict=True):
            mem.embeddings.remember(q, v.tolist())
        await mem.search(qs[0], user_id="u", limit=5)  # load the user's matrix once
        out = {}
        for mode in ("hybrid", "keyword", "vector"):
            times = []
            for q in qs:
                t = time.perf_counter()
                await mem.search(q, user_id="u", limit=5, mode=mode)
                times.append((time.perf_counter() - t) * 1000)
            out[mode] = (pct(times, 50), pct(times, 99))
        if store.engine.dialect.name == "postgresql":
            ab = await side_by_side(
                lambda q: mem.repo.keyword("u", q, 50),
                lambda q: baseline_memory_keyword(store, "u", q, 50),
                qs,
            )
            out.update({f"keyword {k}": v for k, v in ab.items()})
        return out
    finally:
        await store.close()


async def knowledge_search(
    home: Path, url: str | None, n: int, queries: int
) -> dict[str, tuple[float, float]]:
    from bench_knowledge import fill as fill_chunks
    from bench_knowledge import sentence_maker, vocabulary

    from cozy.engines.knowledge.search import run_search
    from cozy.runtime import Runtime
    from cozy.settings import Settings

    home.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - setup, not measured
    (home / "engines.yaml").write_text("knowledge: {provider: local}\nembed: {provider: local}\n")
    rt = await Runtime.open(Settings(home=home, database_url=url), engines=False)
    try:
        k: Any = await rt.engine("knowledge")
        embedder = await k.embedder()
        await fill_chunks(k, n, random.Random(n), embedder.dimensions, k.model_key(embedder))
        gen = await k.index.generation("bench")
        if url:
            async with k.index.engine.begin() as conn:
                await conn.execute(sa_text("ANALYZE knowledge_chunks"))
        make = sentence_maker(random.Random(3), vocabulary(30_000, random.Random(n)))
        qs = [make(4) for _ in range(queries)]
        for q in qs:  # embed every query once (cached): timings are retrieval alone
            await run_search(k, q, "bench", None, None, 5, "vector", None, gen)
        out = {}
        for mode in ("hybrid", "bm25", "vector"):
            times = []
            for q in qs:
                t = time.perf_counter()
                await run_search(k, q, "bench", None, None, 5, mode, None, gen)
                times.append((time.perf_counter() - t) * 1000)
            out[mode] = (pct(times, 50), pct(times, 99))
        if url:
            ab = await side_by_side(
                lambda q: k.keyword_search(q, "bench", None, None, 50, gen),
                lambda q: baseline_knowledge_keyword(k.index, "bench", q, 50),
                qs,
            )  # fmt: skip
            out.update({f"bm25 {name}": v for name, v in ab.items()})
        return out
    finally:
        await rt.close()


async def search(sizes: list[int], queries: int) -> None:
    mem_rows: list[list[Any]] = []
    kn_rows: list[list[Any]] = []
    for n in sizes:
        for engine in ("sqlite", "postgres"):
            name = f"cozy_bench_{uuid.uuid4().hex[:8]}"
            tmp = Path(tempfile.mkdtemp(prefix="bench-sm-"))
            if engine == "postgres":
                await admin(f'CREATE DATABASE "{name}"')
                url: str | None = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
            else:
                url = None
            try:
                t = time.perf_counter()
                m = await memory_search(url or f"sqlite:///{tmp / 'm.db'}", n, queries)
                fill_m = time.perf_counter() - t
                t = time.perf_counter()
                kn = await knowledge_search(tmp / "k", url, n, queries)
                fill_k = time.perf_counter() - t
            finally:
                if url:
                    await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            for mode, (p50, p99) in m.items():
                mem_rows.append(
                    [f"{n:,}", engine, mode, f"{p50:.2f}", f"{p99:.2f}", f"{fill_m:.0f}"]
                )
            for mode, (p50, p99) in kn.items():
                kn_rows.append(
                    [f"{n:,}", engine, mode, f"{p50:.2f}", f"{p99:.2f}", f"{fill_k:.0f}"]
                )
            print(f"  [{n:,} {engine}: done]", flush=True)
    header = ["vectors", "database", "mode", "p50 ms", "p99 ms", "fill+run s"]
    table("memory search, one user (limit 5)", header, mem_rows)
    table("knowledge search, one collection (limit 5)", header, kn_rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1280)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-search", action="store_true")
    args = parser.parse_args()
    if not args.skip_throughput:
        throughput(args.requests, args.concurrency)
    if not args.skip_search:
        asyncio.run(search([int(s) for s in args.sizes.split(",")], args.queries))


if __name__ == "__main__":
    main()
