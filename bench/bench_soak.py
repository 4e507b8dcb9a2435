"""Soak: `cozy serve` with context on (local memory, profile and knowledge) under
growing concurrency. Prints one table; asserts nothing.

    .venv/bin/python bench/bench_soak.py [--conc 1,10,50,100,200] [--requests 200]
        [--latency 0.0] [--users 4] [--knowledge docs] [--idle 20]
    .venv/bin/python bench/bench_soak.py --freeze [model,postgres,redis,mcp,embedder]
        [--requests 40] [--conc 10] [--deadline 5]     # each dependency frozen in turn

One `cozy serve --workers 1` (SQLite, persistence on, the local embedder) in front of
the fake model (its own process; `--latency` seconds before its first token). Before
the levels, `--knowledge` (a folder) is added to the knowledge base, so knowledge
search has something to search. At each concurrency C, max(--requests, C) chat
completions are sent, C at a time, each with a different question (so no query vector
is cached) from one of `--users` users. Per level:

  answered %   HTTP 200
  degraded %   of the answered, those carrying `X-Cozy-Degraded` (an engine timed
               out or failed, or knowledge ran on keywords only)
  p50/p99 ms   request latency
  RSS MiB      of the server before and after the level
  backlog      background jobs pending (memory extraction, turn indexing) after it
At the end the server is left idle for `--idle` s (its jobs drain) and its RSS and
backlog are read again.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_server import PY, cozy_env, free_port, pct, process

ROOT = Path(__file__).resolve().parents[1]
SUBJECTS = (
    "the budget for the trip to Lisbon",
    "how the garden irrigation works",
    "my sister's birthday plans",
    "the database migration at work",
    "which books I read last winter",
    "the noise from the upstairs flat",
    "training for the half marathon",
    "the new espresso machine",
    "how memory search ranks results",
    "the server deadlines and timeouts",
)
ASKS = ("What do you remember about", "Summarise", "Give me advice on", "Remind me of")


def question(i: int) -> str:
    return f"{ASKS[i % len(ASKS)]} {SUBJECTS[(i // len(ASKS)) % len(SUBJECTS)]} (note {i})."


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def backlog(env: dict[str, str]) -> int:
    out = subprocess.run(
        [PY, "-m", "cozy", "jobs", "list", "--json", "--limit", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    try:
        counts = json.loads(out.stdout)["counts"]
    except (ValueError, KeyError):
        return -1
    return int(counts.get("pending", 0)) + int(counts.get("running", 0))


async def level(url: str, keys: list[str], conc: int, n: int, start: int) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
    statuses: Counter[int] = Counter()
    degraded: Counter[str] = Counter()
    lat: list[float] = []
    reasons: Counter[str] = Counter()
    todo = list(range(start, start + n))
    async with httpx.AsyncClient(limits=limits, timeout=300) as client:

        async def worker() -> None:
            while todo:
                i = todo.pop()
                body = {"model": "cozy", "messages": [{"role": "user", "content": question(i)}]}
                headers = {"Authorization": f"Bearer {keys[i % len(keys)]}"}
                t = time.perf_counter()
                try:
                    r = await client.post(url, json=body, headers=headers)
                except httpx.HTTPError:
                    statuses[0] += 1
                    continue
                statuses[r.status_code] += 1
                if r.status_code == 200:
                    lat.append(time.perf_counter() - t)
                    for name in filter(None, r.headers.get("x-cozy-degraded", "").split(",")):
                        degraded[name] += 1
                    if "x-cozy-degraded" in r.headers:
                        degraded["any"] += 1
                        for why in (r.json().get("cozy") or {}).get("degrade_reasons", []):
                            reasons[re.sub(r"[0-9.]+", "N", why)[:90]] += 1

        await asyncio.gather(*(worker() for _ in range(conc)))
    return {"statuses": statuses, "degraded": degraded, "lat": lat, "reasons": reasons}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--conc", default="1,10,50,100,200")
    ap.add_argument("--requests", type=int, default=200, help="requests per level (at least C)")
    ap.add_argument("--latency", type=float, default=0.0, help="the fake model's first-token s")
    ap.add_argument("--users", type=int, default=4)
    ap.add_argument("--knowledge", default=str(ROOT / "docs"), help="folder to add ('' none)")
    ap.add_argument("--idle", type=float, default=20.0, help="idle seconds at the end")
    ap.add_argument(
        "--freeze",
        nargs="?",
        const="model,postgres,redis,mcp,embedder",
        default=None,
        help="instead: freeze each dependency in turn (see soak_freeze.py); "
        "--requests per dependency at the first --conc",
    )
    ap.add_argument("--deadline", type=float, default=5.0, help="--freeze: every timeout, s")
    args = ap.parse_args()
    if args.freeze is not None:
        from soak_freeze import run_freeze

        deps = [d for d in args.freeze.split(",") if d]
        run_freeze(deps, args.requests, int(args.conc.split(",")[0]), args.deadline)
        return
    concs = [int(c) for c in args.conc.split(",")]
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        fake_port = free_port()
        fake = f"http://127.0.0.1:{fake_port}"
        fake_cmd = [PY, "-m", "cozy.testing", "--port", str(fake_port)]
        fake_cmd += ["--latency", str(args.latency)]
        stack.enter_context(process(fake_cmd, dict(os.environ), fake + "/v1/models"))
        home = tmp / "home"
        home.mkdir()
        env = cozy_env(home, fake, True)
        keys = []
        for u in range(args.users):
            out = subprocess.run(
                [PY, "-m", "cozy", "keys", "create", "--user", f"user{u}"],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            keys.append(out.stdout.strip())
        if args.knowledge:
            subprocess.run(
                [PY, "-m", "cozy", "knowledge", "add", args.knowledge, "--wait"],
                env=env,
                capture_output=True,
                check=False,
                timeout=900,
            )
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        cmd = [PY, "-m", "cozy", "serve", "--port", str(port), "--workers", "1"]
        proc = stack.enter_context(process(cmd, env, base + "/health"))
        url = base + "/v1/chat/completions"
        rows = []
        start = 0
        for c in concs:
            n = max(args.requests, c)
            before = rss_mib(proc.pid)
            t = time.perf_counter()
            res = asyncio.run(level(url, keys, c, n, start))
            wall = time.perf_counter() - t
            start += n
            rows.append((c, n, res, before, rss_mib(proc.pid), backlog(env), wall))
            print(f"  conc {c} done in {wall:.0f}s", file=sys.stderr, flush=True)
        time.sleep(args.idle)
        idle_rss, idle_backlog = rss_mib(proc.pid), backlog(env)
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(
        f"\ncozy serve, one worker, context on (local memory/profile/knowledge, local "
        f"embedder), fake model latency {args.latency:g}s; {args.users} users, a new "
        f"question per request; load average {load}\n"
    )
    head = f"{'conc':>5}{'reqs':>6}{'answered%':>10}{'degraded%':>10}{'p50 ms':>9}{'p99 ms':>9}"
    print(head + f"{'req/s':>7}{'RSS before':>11}{'RSS after':>10}{'backlog':>8}  degraded by")
    for c, n, res, before, after, jobs, wall in rows:
        ok = res["statuses"][200]
        deg = res["degraded"]["any"]
        by = ", ".join(f"{k} {v}" for k, v in res["degraded"].most_common() if k != "any")
        other = {k: v for k, v in res["statuses"].items() if k != 200}
        print(
            f"{c:>5}{n:>6}{100 * ok / n:>10.1f}{100 * deg / max(ok, 1):>10.1f}"
            f"{pct(res['lat'], 0.5) if ok else 0:>9.0f}{pct(res['lat'], 0.99) if ok else 0:>9.0f}"
            f"{n / wall:>7.1f}{before:>11.0f}{after:>10.0f}{jobs:>8}  {by or '-'}"
            + (f"  errors {other}" if other else "")
        )
    for c, _, res, *_ in rows:
        for why, count in res["reasons"].most_common(4):
            print(f"  conc {c}: {count} x {why}")
    print(
        f"\nidle {args.idle:g}s after the last level: RSS {idle_rss:.0f} MiB, "
        f"backlog {idle_backlog}"
    )


if __name__ == "__main__":
    main()
