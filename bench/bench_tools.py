"""Tools engine overhead: cozy's MCP provider vs the raw MCP ClientSession, same run.

    .venv/bin/python bench/bench_tools.py [--calls 300] [--starts 5]

Per call: the same no-op tool called through `MCPTools.execute_tool` and through a
bare `ClientSession.call_tool` on its own connection to the same server script. The
raw figure is transport + server + tool time, so engine - raw is cozy's own cost
(lookup, schema validation, timeout, result conversion, output cap).
Start: spawn + MCP handshake (+ tools/list for cozy, which is what a first use does).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from mcp_servers.helpers import SERVER, http_server  # noqa: E402

from cozy.core.types import Caller  # noqa: E402
from cozy.engines.base import ToolContext  # noqa: E402
from cozy.engines.tools.mcp_provider import MCPTools  # noqa: E402

CTX = ToolContext(caller=Caller())


async def timed(
    a: Callable[[], Awaitable[Any]], b: Callable[[], Awaitable[Any]], n: int
) -> tuple[list[float], list[float]]:
    """Interleaved, so drift (CPU frequency, other load) hits both sides alike."""
    for _ in range(min(20, n)):
        await a()  # warm up
        await b()
    out: tuple[list[float], list[float]] = ([], [])
    for _ in range(n):
        for fn, acc in ((a, out[0]), (b, out[1])):
            t0 = time.perf_counter()
            await fn()
            acc.append((time.perf_counter() - t0) * 1000)
    return out


async def raw_session(stack: AsyncExitStack, url: str | None) -> Any:
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client
    from mcp.client.streamable_http import streamable_http_client

    if url:
        read, write = await stack.enter_async_context(streamable_http_client(url))
    else:
        params = StdioServerParameters(command=sys.executable, args=[str(SERVER)])
        read, write = await stack.enter_async_context(stdio_client(params))
    session = await stack.enter_async_context(ClientSession(read, write))
    await session.initialize()
    return session


async def bench_calls(label: str, cfg: dict[str, Any], url: str | None, n: int) -> list[str]:
    eng = MCPTools({"servers": {"b": cfg}, "builtin": False})
    try:
        await eng.list_tools()
        async with AsyncExitStack() as stack:
            session = await raw_session(stack, url)
            cozy, raw = await timed(
                lambda: eng.execute_tool("b.noop", {}, CTX),
                lambda: session.call_tool("noop", {}),
                n,
            )
    finally:
        await eng.close()
    c, r = statistics.median(cozy), statistics.median(raw)
    p95 = statistics.quantiles(cozy, n=20)[18]
    return [label, f"{r:.3f}", f"{c:.3f}", f"{c - r:+.3f}", f"{c / r:.2f}x", f"{p95:.3f}"]


async def bench_start(n: int) -> list[list[str]]:
    from mcp import ClientSession  # noqa: F401 - import cost out of the timings

    cozy, raw = [], []
    for _ in range(n):
        eng = MCPTools({"servers": {"b": {"command": sys.executable, "args": [str(SERVER)]}}})
        t0 = time.perf_counter()
        await eng.list_tools()
        cozy.append((time.perf_counter() - t0) * 1000)
        await eng.close()
        async with AsyncExitStack() as stack:
            t0 = time.perf_counter()
            await raw_session(stack, None)
            raw.append((time.perf_counter() - t0) * 1000)
    c, r = statistics.median(cozy), statistics.median(raw)
    return [
        [
            "stdio start (spawn+init[+list])",
            f"{r:.1f}",
            f"{c:.1f}",
            f"{c - r:+.1f}",
            f"{c / r:.2f}x",
            "-",
        ]
    ]


def table(rows: list[list[str]]) -> str:
    head = ["case", "raw SDK ms", "cozy ms", "cozy overhead ms", "ratio", "cozy p95 ms"]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(r: list[str]) -> str:
        cells = zip(r, widths, strict=True)
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(cells))

    return "\n".join([line(head), line(["-" * w for w in widths]), *(line(r) for r in rows)])


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--starts", type=int, default=5)
    args = ap.parse_args()
    rows = [
        await bench_calls(
            "stdio call (noop)",
            {"command": sys.executable, "args": [str(SERVER)]},
            None,
            args.calls,
        )
    ]
    with http_server() as port:
        url = f"http://127.0.0.1:{port}/mcp"
        rows.append(await bench_calls("streamable-http call (noop)", {"url": url}, url, args.calls))
    rows += await bench_start(args.starts)
    print(f"median per call over {args.calls} calls; start: median of {args.starts}")
    print(table(rows))


if __name__ == "__main__":
    asyncio.run(main())
