"""The tool loop's own cost per call: ToolRunner vs calling the tools engine directly.

    .venv/bin/python bench/bench_toolloop.py [--calls 300]

Same no-op tool, same engine, interleaved in one run. The ToolRunner side adds what
every chat tool call pays in the core: JSON argument parsing, schema validation,
face policy, the remembered-grant lookup (write tools), the audit row (SQLite, WAL)
and the events. bench/bench_tools.py measures the provider's own overhead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from mcp_servers.helpers import SERVER  # noqa: E402

from cozy.core.toolloop import ToolRunner  # noqa: E402
from cozy.core.types import Caller, Message, ToolCall, ToolSpec  # noqa: E402
from cozy.engines.base import ToolContext, ToolsEngine  # noqa: E402
from cozy.engines.tools.mcp_provider import MCPTools  # noqa: E402
from cozy.storage.store import Store  # noqa: E402
from cozy.storage.tool_grants import ToolGrants  # noqa: E402

CTX = ToolContext(caller=Caller(), session_id=None, personality_id="bench")


async def timed(
    a: Callable[[], Awaitable[Any]], b: Callable[[], Awaitable[Any]], n: int
) -> tuple[list[float], list[float]]:
    for _ in range(min(20, n)):
        await a()
        await b()
    out: tuple[list[float], list[float]] = ([], [])
    for _ in range(n):
        for fn, acc in ((a, out[0]), (b, out[1])):
            t0 = time.perf_counter()
            await fn()
            acc.append((time.perf_counter() - t0) * 1000)
    return out


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


async def case(
    runner: ToolRunner, engine: ToolsEngine, spec: ToolSpec, args: dict[str, Any], n: int
) -> tuple[list[float], list[float]]:
    specs = {spec.name: spec}
    text = json.dumps(args)

    async def direct() -> None:
        out = await engine.execute_tool(spec.name, args, CTX)
        assert not out.is_error, out.content

    async def looped() -> None:
        results: list[Message] = []
        call = ToolCall("c1", spec.name, text)
        async for _event in runner.run([call], specs, CTX, None, results):
            pass
        assert results and "failed" not in results[0].content, results

    return await timed(direct, looped, n)


async def main(calls: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = await Store.open(f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}")
        engine = MCPTools({"servers": {"t": {"command": sys.executable, "args": [str(SERVER)]}}})

        async def noop(args: dict[str, Any], ctx: ToolContext) -> str:
            return ""

        schema = {
            "type": "object",
            "properties": {"text": {"type": "string"}, "n": {"type": "integer"}},
            "required": ["text"],
        }
        engine.register_builtin(ToolSpec("builtin.noop", "", schema, "read-only"), noop)
        engine.register_builtin(ToolSpec("builtin.wnoop", "", schema, "write"), noop)
        grants = ToolGrants(store)
        await grants.add_grant(CTX.caller.user_id, "bench", "builtin.wnoop")
        runner = ToolRunner(engine, audit=store, grants=grants)
        bare = ToolRunner(engine)  # no audit sink, grants in memory: the pure loop cost
        bare.grant(CTX.caller.user_id, "bench", "builtin.wnoop")
        specs = {s.name: s for s in await engine.list_tools()}
        args = {"text": "hello", "n": 3}
        rows = []
        try:
            for label, run, name, a in (
                ("builtin, read-only", runner, "builtin.noop", args),
                ("  same, no audit row", bare, "builtin.noop", args),
                ("builtin, write (granted)", runner, "builtin.wnoop", args),
                ("  same, no audit, no DB", bare, "builtin.wnoop", args),
                ("mcp stdio, read-only", runner, "t.noop", {}),
            ):
                direct, looped = await case(run, engine, specs[name], a, calls)
                d50, l50 = statistics.median(direct), statistics.median(looped)
                rows.append((label, d50, l50, l50 - d50, pct(looped, 0.99)))
        finally:
            await engine.close()
            await store.close()
    print(f"tool loop overhead, {calls} calls per case (ms; medians unless noted)\n")
    head = ("case", "engine p50", "ToolRunner p50", "loop cost p50", "ToolRunner p99")
    print(f"{head[0]:<26} {head[1]:>11} {head[2]:>15} {head[3]:>14} {head[4]:>15}")
    for label, d50, l50, cost, l99 in rows:
        print(f"{label:<26} {d50:>11.3f} {l50:>15.3f} {cost:>14.3f} {l99:>15.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    asyncio.run(main(parser.parse_args().calls))
