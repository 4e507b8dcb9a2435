"""Context-stage cost vs session length: no full-history scans on the hot path.

Prints prepare+context time (ms, p50/p99) for sessions of 10 and 1,000 (and
10,000) stored messages, side by side, with an in-process model so nothing but
cozy is measured. Target: 1,000 messages within 2 ms of 10 messages.

Run: .venv/bin/python bench/bench_context.py [--turns 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_core import InstantModel, pct

from cozy.core.orchestrator import ChatRequest
from cozy.engines.registry import registry
from cozy.runtime import Runtime
from cozy.settings import Settings
from cozy.storage.store import NewMessage


async def measure(sizes: list[int], turns: int) -> dict[int, list[float]]:
    registry.register("ai", "instant", InstantModel)
    home = Path(tempfile.mkdtemp(prefix="cozy-bench-ctx-"))
    (home / "engines.yaml").write_text(
        "ai: {provider: instant, model: x}\n"
        "memory: {provider: none}\nprofile: {provider: none}\nknowledge: {provider: none}\n"
    )
    rt = await Runtime.open(Settings(home=home))
    out: dict[int, list[float]] = {}
    try:
        sessions: dict[int, str] = {}
        for size in sizes:
            s = await rt.store.create_session("local", "plain")
            sessions[size] = s.id
            out[size] = []
            batch = [
                NewMessage("user" if i % 2 == 0 else "assistant", f"message {i} " * 20)
                for i in range(size)
            ]
            for start in range(0, size, 500):
                await rt.store.add_messages(s.id, batch[start : start + 500])
        # round-robin over the sessions so warm-up and machine load hit all sizes alike
        for i in range(turns + 10):
            for size, sid in sessions.items():
                done = None
                async for ev in rt.orchestrator.run(
                    ChatRequest(f"q {i}", session=sid, personality="plain")
                ):
                    done = ev
                if i >= 10 and done is not None:
                    t = done.timings  # type: ignore[attr-defined]
                    out[size].append(t["prepare"] + t["context"])
    finally:
        await rt.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--turns", type=int, default=200)
    ap.add_argument("--sizes", default="10,1000,10000")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    res = asyncio.run(measure(sizes, args.turns))
    base = statistics.median(res[sizes[0]])
    print(f"{'stored messages':>16} {'p50 ms':>9} {'p99 ms':>9} {'p50 - base':>11}")
    for size in sizes:
        v = res[size]
        p50 = statistics.median(v)
        print(f"{size:>16} {p50:9.2f} {pct(v, 0.99):9.2f} {p50 - base:+11.2f}")
    print("target: 1,000 messages within 2 ms of 10 (prepare + context stages)")


if __name__ == "__main__":
    main()
