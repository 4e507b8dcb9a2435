"""Foundation benchmark: CLI start-up, one-shot run wall time, orchestrator overhead.

Prints tables; asserts nothing. Run: .venv/bin/python bench/bench_core.py [--turns 500]

- `cozy --help` wall time next to a bare interpreter and `import typer` (targets: ≤150 ms).
- `cozy run --json` wall time against the fake model server (zero latency) next to a
  script that makes the same call with the bare `ollama` SDK.
- Orchestrator overhead per turn, in-process: every stage but the model, with
  (a) an in-process model engine that answers instantly, so the whole turn is overhead,
  and (b) the fake HTTP server, minus the time the same SDK call takes alone.
  Target: p50 ≤ 5 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from cozy.core.orchestrator import ChatRequest
from cozy.core.types import (
    ChatResult,
    GenerationOptions,
    Message,
    ModelInfo,
    StreamChunk,
    ToolSpec,
    Usage,
)
from cozy.engines.base import AIEngine
from cozy.engines.registry import registry
from cozy.runtime import Runtime
from cozy.settings import Settings
from cozy.testing import FakeModelServer

PY = sys.executable


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def wall(cmd: list[str], n: int, env: dict[str, str] | None = None) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(cmd, capture_output=True, env=env, check=False, stdin=subprocess.DEVNULL)
        out.append((time.perf_counter() - t) * 1000)
    return out


def row(name: str, ms: Sequence[float], base: float | None = None) -> str:
    p50 = statistics.median(ms)
    ratio = f"{p50 / base:6.2f}x" if base else "       "
    return f"{name:<44} {p50:9.1f} {pct(ms, 0.9):9.1f} {ratio}"


class InstantModel(AIEngine):
    """Answers at once, in-process: isolates everything but the model."""

    provider_name = "instant"

    async def chat(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        tools: Sequence[ToolSpec] | None = None,
        options: GenerationOptions | None = None,
    ) -> ChatResult:
        return ChatResult("ok")

    async def chat_stream(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        tools: Sequence[ToolSpec] | None = None,
        options: GenerationOptions | None = None,
    ) -> AsyncIterator[StreamChunk]:
        for word in ("The", " answer", " is", " four."):
            yield StreamChunk(delta=word)
        yield StreamChunk(finish_reason="stop", usage=Usage(20, 4))

    async def list_models(self) -> list[ModelInfo]:
        return [ModelInfo("instant", "instant")]


def engines_yaml(home: Path, url: str) -> None:
    (home / "engines.yaml").write_text(
        "ai:\n  provider: ollama\n  model: fake-model\n"
        f"  providers: {{ollama: {{host: '{url}'}}}}\n",
        encoding="utf-8",
    )


async def overhead(home: Path, url: str, turns: int) -> dict[str, list[float]]:
    registry.register("ai", "instant", InstantModel)
    engines_yaml(home, url)
    rt = await Runtime.open(Settings(home=home))
    results: dict[str, list[float]] = {"instant": [], "fake_http": [], "sdk_alone": []}
    stages: dict[str, list[float]] = {}
    try:
        for label, model in (("instant", "instant:x"), ("fake_http", "ollama:fake-model")):
            sid = "new"
            for i in range(turns + 20):
                t = time.perf_counter()
                async for ev in rt.orchestrator.run(
                    ChatRequest(f"turn {i}", session=sid, model=model, no_context=True)
                ):
                    if ev.type == "done":
                        sid = ev.session_id  # type: ignore[attr-defined]
                        if label == "instant" and i >= 20:
                            for stage, ms in ev.timings.items():  # type: ignore[attr-defined]
                                stages.setdefault(f"stage {stage}", []).append(ms)
                if i >= 20:  # warm-up excluded
                    results[label].append((time.perf_counter() - t) * 1000)
        engine = await rt.router.engine("ollama")
        msgs = [Message("system", "x"), Message("user", "turn 1")]
        for i in range(turns + 20):
            t = time.perf_counter()
            async for _ in engine.chat_stream(msgs, model="fake-model"):
                pass
            if i >= 20:
                results["sdk_alone"].append((time.perf_counter() - t) * 1000)
    finally:
        await rt.close()
    return {**results, **stages}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--turns", type=int, default=500)
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    fake = FakeModelServer().start()
    home = Path(tempfile.mkdtemp(prefix="cozy-bench-"))
    env = {**os.environ, "COZY_HOME": str(home)}
    engines_yaml(home, fake.url)
    print(f"{'start-up (wall, ms)':<44} {'p50':>9} {'p90':>9} {'ratio':>7}")
    bare = wall([PY, "-c", "pass"], args.runs)
    print(row("python -c pass (baseline)", bare))
    typer_ms = wall([PY, "-c", "import typer"], args.runs)
    print(row("python -c 'import typer'", typer_ms, statistics.median(bare)))
    help_ms = wall([PY, "-m", "cozy", "--help"], args.runs, env)
    print(row("cozy --help            (target <= 150 ms)", help_ms, statistics.median(bare)))
    sdk = (
        f"import ollama; c = ollama.Client(host={fake.url!r}); "
        "c.chat(model='fake-model', messages=[{'role': 'user', 'content': 'hi'}])"
    )
    sdk_ms = wall([PY, "-c", sdk], args.runs)
    print(row("bare ollama SDK call (baseline)", sdk_ms))
    run_ms = wall([PY, "-m", "cozy", "run", "--json", "hi"], args.runs, env)
    print(row("cozy run --json 'hi'", run_ms, statistics.median(sdk_ms)))

    res = asyncio.run(overhead(home, fake.url, args.turns))
    fake.stop()
    print()
    print(f"orchestrator per turn, {args.turns} turns (ms)        p50       p99")
    for label, name in (
        ("instant", "whole turn, in-process model (= overhead)"),
        ("fake_http", "whole turn, fake HTTP model"),
        ("sdk_alone", "same SDK call alone (model time)"),
    ):
        v = res[label]
        print(f"  {name:<44} {statistics.median(v):7.2f} {pct(v, 0.99):9.2f}")
    print("  where the in-process turn goes (p50 per stage, from Done.timings):")
    for label in ("prepare", "context", "tools", "generate", "persist"):
        v = res.get(f"stage {label}") or [0.0]
        print(f"    {label:<42} {statistics.median(v):7.2f} {pct(v, 0.99):9.2f}")
    diff = statistics.median(res["fake_http"]) - statistics.median(res["sdk_alone"])
    print(f"  {'overhead = HTTP turn - SDK alone (p50)':<44} {diff:7.2f}")
    print("  target: overhead p50 <= 5 ms")


if __name__ == "__main__":
    main()
