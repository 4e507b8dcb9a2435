"""Third-party providers side by side: add/search latency, and LoCoMo-dev retrieval
with mem0 (infer off, the same local MiniLM embedder) next to cozy's memory.local.

Reuses bench/locomo_eval.py (loader, scoring, table, cached embedder). memobase runs
against the protocol fake in tests/memobase_fake.py (no real server here). cognee
lives in .venv-cognee (openai<3): its figures come from tests/test_provider_cognee.py.

    .venv/bin/python bench/bench_providers.py [--limit-convs N] [--ops N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

import locomo_eval as le  # noqa: E402


def ms(values: list[float]) -> str:
    if not values:
        return "-"
    p50 = statistics.median(values) * 1000
    p95 = sorted(values)[int(len(values) * 0.95) - 1] * 1000 if len(values) > 1 else p50
    return f"{p50:8.1f} {p95:8.1f}"


async def mem0_engine(embedder: Any, home: Path) -> Any:
    from cozy.engines.base import EngineContext
    from cozy.engines.memory.mem0_provider import Mem0Memory

    engine = Mem0Memory(
        {"infer": False, "path": str(home / "mem0")}, EngineContext(embedder=embedder)
    )
    await engine.client()
    return engine


async def latency(embedder: Any, ops: int) -> list[tuple[str, list[float], list[float]]]:
    from memobase_fake import MemobaseFake

    from cozy.core.types import Message
    from cozy.engines.base import EngineContext
    from cozy.engines.memory.local import LocalMemory
    from cozy.engines.memory.types import TurnInput
    from cozy.engines.profile.memobase_provider import MemobaseProfile
    from cozy.storage.store import Store

    home = Path(tempfile.mkdtemp(prefix="bench-providers-"))
    texts = [f"Note {i}: I visited city number {i} and liked its food." for i in range(ops)]
    await embedder.embed(texts + [f"which city {i}" for i in range(ops)])  # warm the cache
    rows = []
    # memory.local (raw turns, same embedder)
    store = await Store.open(f"sqlite+aiosqlite:///{home / 'cozy.db'}")
    local = LocalMemory({"vector_timeout": 60}, EngineContext(store=store, embedder=embedder))
    add, search = [], []
    for i, t in enumerate(texts):
        s = time.perf_counter()
        await local.index_turns([TurnInput(f"m{i}", "user", t, time.time())], user_id="u")
        add.append(time.perf_counter() - s)
    for i in range(ops):
        s = time.perf_counter()
        await local.search_memories(f"which city {i}", user_id="u")
        search.append(time.perf_counter() - s)
    rows.append(("memory.local", add, search))
    await store.close()
    # memory.mem0 (infer off)
    mem = await mem0_engine(embedder, home)
    add, search = [], []
    for t in texts:
        s = time.perf_counter()
        await mem.add_memory([Message("user", t)], user_id="u")
        add.append(time.perf_counter() - s)
    for i in range(ops):
        s = time.perf_counter()
        await mem.search_memories(f"which city {i}", user_id="u")
        search.append(time.perf_counter() - s)
    rows.append(("memory.mem0", add, search))
    await mem.close()
    # profile.memobase against the protocol fake (HTTP round trips only)
    fake = MemobaseFake("k").start()
    prof = MemobaseProfile({"url": fake.url, "api_key": "k", "cache_ttl": 0})
    add, search = [], []
    for t in texts:
        s = time.perf_counter()
        await prof.insert_turn("u", [Message("user", t)])
        add.append(time.perf_counter() - s)
    for _ in range(ops):
        s = time.perf_counter()
        await prof.get_profile("u")
        search.append(time.perf_counter() - s)
    rows.append(("profile.memobase*", add, search))
    await prof.close()
    fake.stop()
    return rows


async def locomo_mem0(path: Path, embedder: Any) -> tuple[dict[Any, list[float]], int, float]:
    from cozy.core.types import Message

    conv = json.loads(await asyncio.to_thread(path.read_text))
    home = Path(tempfile.mkdtemp(prefix="locomo-mem0-"))
    mem = await mem0_engine(embedder, home)
    user, n, started = path.stem, 0, time.perf_counter()
    for session in conv["sessions"]:
        for t in session["turns"]:
            n += 1
            await mem.add_memory(
                [Message("user", le.turn_text(session, t))], user_id=user, source_ids=[t["dia_id"]]
            )
    ingest = time.perf_counter() - started
    res: dict[Any, list[float]] = defaultdict(list)
    for item in conv["qa"]:
        cat = item.get("category")
        gold = le.evidence(item)
        if cat not in le.CATEGORIES or not gold:
            continue
        hits = await mem.search_memories(str(item["question"]), user_id=user, limit=max(le.KS))
        got = [h.source_message_ids[0] if h.source_message_ids else None for h in hits]
        for k in le.KS:
            found = gold & set(got[:k])
            res[(cat, k, "recall")].append(len(found) / len(gold))
            res[(cat, k, "hit")].append(1.0 if found else 0.0)
    await mem.close()
    return res, n, ingest


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=le.DATA)
    ap.add_argument("--limit-convs", type=int, default=None)
    ap.add_argument("--ops", type=int, default=100)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "cozy-locomo")
    args = ap.parse_args()
    from cozy.engines.embed.local import LocalEmbedder

    inner = LocalEmbedder({})
    await inner.initialize()
    embedder = le.CachedEmbedder(inner, args.cache)

    print(f"add / search latency, {args.ops} ops each (ms; MiniLM vectors cached)")
    print(f"{'provider':<18} {'add p50':>8} {'add p95':>8} {'srch p50':>8} {'srch p95':>8}")
    for name, add, search in await latency(embedder, args.ops):
        print(f"{name:<18} {ms(add)} {ms(search)}")
    print("* memobase: HTTP round trips to the in-process protocol fake, not a real server\n")

    files = sorted(args.data.glob("conv-*.json"))[: args.limit_convs]
    merged: dict[str, dict[Any, list[float]]] = {"hybrid": defaultdict(list)}
    merged["mem0"] = defaultdict(list)
    ingest = {"hybrid": 0.0, "mem0": 0.0}
    turns = 0
    for path in files:
        res, n, s = await le.run_conv(path, embedder, ["hybrid"])
        for key, vals in res["hybrid"].items():
            merged["hybrid"][key].extend(vals)
        ingest["hybrid"] += s
        res0, _n0, s0 = await locomo_mem0(path, embedder)
        for key, vals in res0.items():
            merged["mem0"][key].extend(vals)
        ingest["mem0"] += s0
        turns += n
        print(f"{path.name}: {n} turns (local {s:.1f}s, mem0 {s0:.1f}s)", flush=True)
    embedder.save()
    print()
    print(le.table({"local": merged["hybrid"], "mem0": merged["mem0"]}))
    for name, secs in ingest.items():
        print(f"ingest {name}: {turns} turns in {secs:.1f}s ({turns / max(secs, 1e-9):.0f}/s)")


if __name__ == "__main__":
    asyncio.run(main())
