"""`bench_soak.py --freeze`: the soak with each dependency frozen in turn (not refused:
frozen, as a hung host or a stopped process is). Prints one table; asserts nothing.

One `cozy serve --workers 1` in server mode, context on (local memory, profile and
knowledge on the remote embedder), with every dependency reachable through something
the bench can freeze:

  model      the fake model (in this process) behind a TCP proxy that accepts and then
             stops forwarding (no RST, no FIN)
  postgres   a fresh database on the local PostgreSQL, behind such a proxy (the shared
             server itself is never stopped)
  redis      a Redis db number of our own on the local Redis, behind such a proxy
  mcp        the test MCP server (stdio, a child of `cozy serve`): SIGSTOP / SIGCONT
  embedder   `embed.openai` pointed at the fake model's /v1/embeddings through its own
             proxy (so freezing it leaves the chat model alone)

Per dependency: freeze, send `--requests` chat completions `--conc` at a time (each
asks for a tool, so the MCP server is used), probe /health and /ready while frozen,
thaw, then poll until /ready is 200 without that dependency degraded and a request
is answered in full (not degraded, tool result in the answer). Columns:

  answered %   HTTP 200 while frozen (a clear error counts under `errors`)
  degraded %   of the answered, those carrying `X-Cozy-Degraded`
  p50/p99/max  request latency in ms (answers and errors alike: the deadline is the point)
  /health      status and seconds while frozen; /ready status, seconds, what it said
  recover s    thaw -> /ready healthy and a full answer again
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from pg_redis_helpers import Proxy, pg_database, redis_db  # noqa: E402

from cozy.testing import FakeModelServer  # noqa: E402

PY = sys.executable
MCP_SERVER = ROOT / "tests" / "mcp_servers" / "cozy_test_server.py"
DEPENDENCIES = ("model", "postgres", "redis", "mcp", "embedder")
NOTES = (
    "The trip to Lisbon costs 900 euros in total, flights included.\n",
    "The garden irrigation runs at 6am for twenty minutes on the east beds.\n",
    "Half marathon training: long run on Sundays, intervals on Wednesdays.\n",
)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1000 if values else 0.0


def engines_yaml(model_url: str, embed_url: str, timeout: float) -> str:
    # one deadline per dependency, short enough that a frozen one shows in the table
    return (
        f"ai:\n  provider: openai\n  model: openai:fake\n  timeout: {timeout:g}\n"
        f"  idle_timeout: {timeout:g}\n  providers:\n"
        f"    openai: {{base_url: '{model_url}/v1', api_key: bench, max_retries: 2}}\n"
        "knowledge: {provider: local, timeout: 0.5}\nprofile: {provider: local, timeout: 0.3}\n"
        "memory: {provider: local, timeout: 0.4}\n"
        f"embed: {{provider: openai, base_url: '{embed_url}/v1', api_key: bench,"
        f" model: fake-embed, dimensions: 384, timeout: {timeout:g}, max_retries: 0}}\n"
        f"tools:\n  provider: mcp\n  timeout: {timeout:g}\n  servers:\n"
        f"    t: {{command: {PY}, args: ['{MCP_SERVER}']}}\n"
    )


class Server:
    """`cozy serve` and how to reach it."""

    def __init__(self, env: dict[str, str], key: str) -> None:
        with __import__("socket").socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.base = f"http://127.0.0.1:{self.port}"
        self.auth = {"Authorization": f"Bearer {key}"}
        self.err = tempfile.TemporaryFile("w+")  # noqa: SIM115 - read at the end
        cmd = [PY, "-m", "cozy", "serve", "--port", str(self.port), "--workers", "1"]
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=self.err)
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(self.base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.err.seek(0)
                raise RuntimeError("cozy serve did not start: " + self.err.read()[-2000:])
            time.sleep(0.2)

    def mcp_pids(self) -> list[int]:
        import psutil

        return [
            p.pid
            for p in psutil.Process(self.proc.pid).children(recursive=True)
            if str(MCP_SERVER) in " ".join(p.cmdline())
        ]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


WHY: dict[str, str] = {}  # the last answer's degradation and text, for the log
REASONS: Counter[str] = Counter()  # degrade reasons and error bodies in this phase


async def ask(client: httpx.AsyncClient, srv: Server, i: int) -> tuple[int, float, bool, bool]:
    """One chat completion: (status, seconds, degraded, tool result in the answer)."""
    body = {"model": "cozy/adder", "messages": [{"role": "user", "content": f"add numbers {i}"}]}
    t = time.perf_counter()
    try:
        r = await client.post(srv.base + "/v1/chat/completions", json=body, headers=srv.auth)
    except httpx.HTTPError:
        return 0, time.perf_counter() - t, False, False
    took = time.perf_counter() - t
    text = r.json()["choices"][0]["message"]["content"] if r.status_code == 200 else r.text
    reasons = (r.json().get("cozy") or {}).get("degrade_reasons") if r.status_code == 200 else ""
    for why in reasons or [text[:100]]:  # a degradation, an error, or the answer
        REASONS[re.sub(r"[0-9.]+", "N", why)[:100]] += 1
    WHY["last"] = f"{r.status_code} {reasons or ''} {text[:160]!r}"
    return r.status_code, took, "x-cozy-degraded" in r.headers, "sum: 5" in (text or "")


async def probe(client: httpx.AsyncClient, url: str) -> tuple[int, float, str]:
    t = time.perf_counter()
    try:
        r = await client.get(url)
    except httpx.HTTPError as exc:
        return 0, time.perf_counter() - t, type(exc).__name__
    said = ""
    if r.headers.get("content-type", "").startswith("application/json"):
        body = r.json()
        bad = [k for k, c in (body.get("checks") or {}).items() if not c["ok"] and c["required"]]
        said = ",".join(bad or body.get("degraded") or [])
    return r.status_code, time.perf_counter() - t, said


async def frozen_phase(srv: Server, n: int, conc: int, start: int) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=conc + 2, max_keepalive_connections=conc + 2)
    async with httpx.AsyncClient(limits=limits, timeout=300) as client:
        todo = list(range(start, start + n))
        results: list[tuple[int, float, bool, bool]] = []

        async def worker() -> None:
            while todo:
                results.append(await ask(client, srv, todo.pop()))

        async with httpx.AsyncClient(timeout=300) as probes:
            health = asyncio.ensure_future(probe(probes, srv.base + "/health"))
            ready = asyncio.ensure_future(probe(probes, srv.base + "/ready"))
            await asyncio.gather(*(worker() for _ in range(conc)))
            # and again after the requests, still frozen: some faults are only known
            # once a call has run into them (a hung tool server)
            late = await probe(probes, srv.base + "/ready")
            return {"results": results, "health": await health, "ready": await ready, "late": late}


async def recover(srv: Server, dep: str, limit: float = 180.0) -> float:
    """Seconds from thaw until /ready is healthy for `dep` and a full answer comes."""
    t = time.perf_counter()
    last = said_last = ""
    async with httpx.AsyncClient(timeout=60) as client:
        while time.perf_counter() - t < limit:
            status, _, said = await probe(client, srv.base + "/ready")
            if f"{status} {said}" != last:
                last = f"{status} {said}"
                print(f"    {dep}: /ready {last}", file=sys.stderr)
            # traffic too: some parts (a tool server marked hung) come back on next use
            code, _, degraded, tool_ok = await ask(client, srv, 7)
            if status == 200 and not said and code == 200 and not degraded and tool_ok:
                return time.perf_counter() - t
            if WHY["last"] != said_last:
                said_last = WHY["last"]
                print(f"    {dep}: answer {said_last}", file=sys.stderr)
            await asyncio.sleep(0.25)
    return float("inf")


def run_freeze(deps: list[str], n: int, conc: int, timeout: float) -> None:
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    fake = FakeModelServer()
    fake.add_rule(
        user_contains="add numbers",
        predicate=lambda view: not view.background,  # memory extraction gets the default
        tool_calls=[("t__add", {"a": 2, "b": 3})],
    )
    fake.add_rule(after_tool=True, text="sum: {tool_result}")
    rows = []
    with ExitStack() as stack:
        fake.start()
        stack.callback(fake.stop)
        pg = stack.enter_context(pg_database())
        redis = stack.enter_context(redis_db(14))
        proxies = {
            "model": Proxy("127.0.0.1", fake.port or 0),
            "embedder": Proxy("127.0.0.1", fake.port or 0),
            "postgres": Proxy("127.0.0.1", 5432),
            "redis": Proxy("127.0.0.1", 6379),
        }
        for p in proxies.values():
            stack.callback(p.close)
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        (tmp / "notes").mkdir()
        for i, text in enumerate(NOTES):
            (tmp / "notes" / f"note{i}.md").write_text(text)
        (tmp / "profiles").mkdir()
        (tmp / "profiles" / "adder.yaml").write_text(
            "id: adder\nname: Adder\ndescription: adds\nsystem_prompt: You add.\ntools: ['t.add']\n"
        )
        url = {k: f"http://127.0.0.1:{p.port}" for k, p in proxies.items()}
        (tmp / "engines.yaml").write_text(engines_yaml(url["model"], url["embedder"], timeout))
        env = {k: v for k, v in os.environ.items() if not k.startswith("COZY_")}
        env.update(
            COZY_HOME=str(tmp),
            COZY_CONFIG=str(tmp / "engines.yaml"),
            COZY_LOG_LEVEL="WARNING",
            COZY_DATABASE_URL=pg.replace(":5432/", f":{proxies['postgres'].port}/"),
            COZY_REDIS_URL=redis.replace(":6379/", f":{proxies['redis'].port}/"),
            COZY_DB_CONNECT_TIMEOUT=str(timeout),
            COZY_DB_STATEMENT_TIMEOUT=str(timeout),
            COZY_SERVER_RATE_LIMIT_RPM="0",
            COZY_SERVER_RATE_LIMIT_TPM="0",
            COZY_SERVER_IP_RATE_LIMIT_RPM="0",
        )
        cozy = [PY, "-m", "cozy"]
        key = subprocess.run(
            [*cozy, "keys", "create", "--user", "soak"], env=env, capture_output=True, text=True
        ).stdout.strip()
        subprocess.run(
            [*cozy, "knowledge", "add", str(tmp / "notes"), "--wait"],
            env=env,
            capture_output=True,
            timeout=300,
        )
        srv = Server(env, key)
        stack.callback(srv.stop)
        start = 0
        for dep in deps:
            asyncio.run(recover(srv, dep, 60))  # warm: the MCP server started, caches filled
            stopped: list[int] = []
            before = len(srv.mcp_pids())
            WHY["last"] = ""
            REASONS.clear()
            if dep == "mcp":
                stopped = srv.mcp_pids()
                for pid in stopped:
                    os.kill(pid, signal.SIGSTOP)
            else:
                proxies[dep].freeze()
            t = time.perf_counter()
            res = asyncio.run(frozen_phase(srv, n, conc, start))
            res["why"] = REASONS.copy()
            frozen_for = time.perf_counter() - t
            start += n
            for pid in stopped:  # cozy may have ended it already (no pong after a timeout)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
            if dep != "mcp":
                proxies[dep].thaw()
            back = asyncio.run(recover(srv, dep))
            left = f"{before} -> {len(srv.mcp_pids())}" if dep == "mcp" else None
            rows.append((dep, res, frozen_for, back, left))
            print(f"  {dep} frozen {frozen_for:.0f}s, back in {back:.1f}s", file=sys.stderr)
        srv.err.seek(0)
        log = srv.err.read()
        tail = [ln for ln in log.splitlines() if "Traceback" in ln]
        saved = Path(tempfile.gettempdir()) / f"cozy-soak-freeze-{os.getpid()}.log"
        saved.write_text(log)
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(
        f"\ncozy serve (Postgres + Redis, context on, MCP tools, remote embedder), "
        f"every deadline {timeout:g}s; {n} requests at concurrency {conc} per frozen "
        f"dependency; load average {load}\n"
    )
    print(
        f"{'frozen':<10}{'answered%':>10}{'degraded%':>10}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'max ms':>8}  {'/health':<10}{'/ready first':<22}{'/ready last':<18}{'recover s':>10}"
        "  errors"
    )
    for dep, res, _, back, left in rows:
        r = res["results"]
        ok = [x for x in r if x[0] == 200]
        lat = [x[1] for x in r]
        errors = Counter(x[0] for x in r if x[0] != 200)
        h, rd = res["health"], res["ready"]
        ready = f"{rd[0]} {rd[1]:.1f}s {rd[2] or '-'}"[:21]
        late = f"{res['late'][0]} {res['late'][2] or '-'}"[:17]
        extra = f"  (MCP processes after: {left})" if left is not None else ""
        print(
            f"{dep:<10}{100 * len(ok) / max(len(r), 1):>10.1f}"
            f"{100 * sum(x[2] for x in ok) / max(len(ok), 1):>10.1f}"
            f"{pct(lat, 0.5):>8.0f}{pct(lat, 0.99):>8.0f}{max(lat, default=0) * 1000:>8.0f}"
            f"  {f'{h[0]} {h[1]:.1f}s':<10}{ready:<22}{late:<18}{back:>10.1f}  "
            f"{dict(errors) or '-'}{extra}"
        )
    for dep, res, *_ in rows:
        for why, count in res["why"].most_common(3):
            print(f"  {dep}: {count} x {why}")
    if tail:
        print(f"\n{len(tail)} traceback(s) in the server's log")
    print(f"the server's log: {saved}")
