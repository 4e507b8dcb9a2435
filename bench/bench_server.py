"""What `cozy serve` adds on top of the model, side by side in one run.

    .venv/bin/python bench/bench_server.py [--requests 400] [--conc 1,16,64] [--rounds 2]
        [--litellm auto|none|/path/to/venv/bin/litellm] [--baseline DIR]

Targets, all talking to the same fake upstream (its own process, zero latency):
  direct          the fake model's /v1/chat/completions
  cozy (ctx off)  cozy serve, knowledge/profile/memory engines off, personality `plain`,
                  persistence on (a session and two messages saved per request): the
                  proxy-equivalent path a user of `cozy serve` gets
  cozy (ctx on)   cozy serve, local knowledge/profile/memory engines on
  ... [baseline]  with `--baseline DIR`: the same two servers importing cozy from DIR
                  (e.g. `git worktree add --detach DIR <previous head>`), measured in
                  turn with this tree's, so a change is judged against the head before it
  litellm         LiteLLM's proxy in its own venv. `--litellm auto` (default) builds it
                  once with uv in ~/.cache/cozy-bench/litellm (`uv venv` + `uv pip install
                  'litellm[proxy]'`, from the package index); `none` skips it; or give
                  the path of a `litellm` CLI.
Each server runs as one process with one worker (`cozy serve --workers 1`, `litellm
--num_workers 1`). All servers are up at once and the targets are measured in turn at
each level, for `--rounds` rounds (latencies pooled, req/s the median), so a load
change on the shared machine hits every target alike. Reported: latency p50/p99 and
the latency added over direct, throughput (req/s), CPU time of the server process per
request (user+system, from /proc; the fake upstream's own CPU is not in it), and
streaming time-to-first-token (TTFT) p50 and its overhead over direct at concurrency 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

PY = sys.executable
ERRORS: dict[str, int] = {}  # failed requests per target URL (shown under the table)
LAST_ERROR: dict[str, str] = {}
BODY = {"messages": [{"role": "user", "content": "Say hello in five words."}]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


@contextmanager
def process(
    cmd: list[str], env: dict[str, str], health: str, timeout: float = 90
) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_up(health, proc, timeout)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def cozy_env(home: Path, fake: str, context: bool) -> dict[str, str]:
    engines = "local" if context else "none"
    (home / "engines.yaml").write_text(
        "ai:\n  provider: openai\n  model: openai:fake\n  providers:\n"
        f"    openai: {{base_url: '{fake}/v1', api_key: bench, max_retries: 0}}\n"
        f"knowledge: {{provider: {engines}}}\nprofile: {{provider: {engines}}}\n"
        f"memory: {{provider: {engines}}}\n",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("COZY_")}
    env.update(
        COZY_HOME=str(home),
        COZY_CONFIG=str(home / "engines.yaml"),
        COZY_LOG_LEVEL="WARNING",
        COZY_SERVER_RATE_LIMIT_RPM="0",
        COZY_SERVER_RATE_LIMIT_TPM="0",
        COZY_SERVER_IP_RATE_LIMIT_RPM="0",
        HF_HUB_OFFLINE="1",
    )
    return env


def make_key(env: dict[str, str]) -> str:
    out = subprocess.run(
        [PY, "-m", "cozy", "keys", "create", "--user", "bench"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


async def one(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> float:
    t = time.perf_counter()
    r = await client.post(url, json=body)
    r.raise_for_status()
    return time.perf_counter() - t


async def load(
    url: str, headers: dict[str, str], body: dict[str, Any], conc: int, n: int
) -> tuple[list[float], float]:
    limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=60) as client:
        for _ in range(min(conc * 2, 20)):  # warm up connections and caches (see measure_level)
            await one(client, url, body)
        queue = list(range(n))
        out: list[float] = []

        async def worker() -> None:
            while queue:
                queue.pop()
                try:
                    out.append(await one(client, url, body))
                except httpx.HTTPError as exc:  # counted and shown, not a crashed run
                    ERRORS[url] = ERRORS.get(url, 0) + 1
                    LAST_ERROR[url] = f"{type(exc).__name__}: {exc}"[:200]

        t = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(conc)))
        return out, n / (time.perf_counter() - t)


async def ttft(url: str, headers: dict[str, str], body: dict[str, Any], n: int) -> list[float]:
    out = []
    async with httpx.AsyncClient(headers=headers, timeout=60) as client:
        for i in range(n + 5):
            t = time.perf_counter()
            first = None
            async with client.stream("POST", url, json={**body, "stream": True}) as r:
                async for line in r.aiter_lines():
                    if first is None and _has_text(line):
                        first = time.perf_counter() - t
            if i >= 5 and first is not None:
                out.append(first)
    return out


def _has_text(line: str) -> bool:
    if not line.startswith("data: {"):
        return False
    choices = json.loads(line[6:]).get("choices") or [{}]
    return bool((choices[0].get("delta") or {}).get("content"))


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1000


@dataclass
class Target:
    name: str
    url: str
    headers: dict[str, str]
    model: str
    pid: int
    lat: dict[int, list[float]] = field(default_factory=dict)
    rps: dict[int, list[float]] = field(default_factory=dict)
    cpu: dict[int, list[float]] = field(default_factory=dict)
    ttft: list[float] = field(default_factory=list)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def settle(pid: int, limit: float = 60) -> None:
    """Wait until a server is idle (its background jobs done) before the next target."""
    deadline = time.monotonic() + limit
    last = cpu_seconds(pid)
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        now = cpu_seconds(pid)
        if now - last < 0.03:
            return
        last = now


async def measure_level(t: Target, conc: int, n: int) -> None:
    body = {**BODY, "model": t.model}
    before = cpu_seconds(t.pid)
    lat, rps = await load(t.url, t.headers, body, conc, n)
    await settle(t.pid)  # background jobs a request queued count as its CPU
    warm = min(conc * 2, 20)  # the warm-up requests `load` sends first
    t.cpu.setdefault(conc, []).append((cpu_seconds(t.pid) - before) / (n + warm) * 1000)
    t.lat.setdefault(conc, []).extend(lat)
    t.rps.setdefault(conc, []).append(rps)


def table(rows: list[Target], concs: list[int]) -> None:
    direct = rows[0]
    w = max(16, *(len(r.name) + 1 for r in rows))
    head = f"{'target':<{w}}{'conc':>5}{'p50 ms':>9}{'p99 ms':>9}{'+p50 ms':>9}{'+p99 ms':>9}"
    print(head + f"{'req/s':>9}{'x direct':>9}{'CPU ms/req':>11}")
    for row in rows:
        for c in concs:
            p50, p99 = pct(row.lat[c], 0.5), pct(row.lat[c], 0.99)
            d50, d99 = pct(direct.lat[c], 0.5), pct(direct.lat[c], 0.99)
            rps, drps = statistics.median(row.rps[c]), statistics.median(direct.rps[c])
            print(
                f"{row.name:<{w}}{c:>5}{p50:>9.2f}{p99:>9.2f}{p50 - d50:>9.2f}"
                f"{p99 - d99:>9.2f}{rps:>9.0f}{rps / drps:>9.2f}"
                f"{statistics.median(row.cpu[c]):>11.2f}"
            )
    for row in rows:
        if ERRORS.get(row.url):
            print(f"{row.name}: {ERRORS[row.url]} failed requests ({LAST_ERROR[row.url]})")
    print()
    print(f"{'target':<{w}}{'TTFT p50 ms':>12}{'overhead ms':>12}")
    d = statistics.median(direct.ttft) * 1000
    for row in rows:
        v = statistics.median(row.ttft) * 1000
        print(f"{row.name:<{w}}{v:>12.2f}{v - d:>12.2f}")


def litellm_config(path: Path, fake: str) -> None:
    path.write_text(
        "model_list:\n  - model_name: fake\n    litellm_params:\n"
        f"      model: openai/fake\n      api_base: {fake}/v1\n      api_key: bench\n"
        "litellm_settings:\n  telemetry: false\n  drop_params: true\n",
        encoding="utf-8",
    )


def litellm_cli(choice: str) -> str | None:
    """The `litellm` CLI to run: a given path, none, or (auto) a venv built once with uv."""
    if choice == "none":
        return None
    if choice != "auto":
        return choice
    venv = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cozy-bench/litellm"
    cli = venv / "bin/litellm"
    if cli.exists():
        return str(cli)
    here = Path(sys.executable).parent / "uv"
    uv = str(here) if here.exists() else shutil.which("uv")
    if uv is None:
        print("LiteLLM skipped: uv is not installed (see install.sh)", file=sys.stderr)
        return None
    print(f"building LiteLLM's venv in {venv} (once)", file=sys.stderr, flush=True)
    try:
        subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True)
        subprocess.run(
            [uv, "pip", "install", "-q", "--python", str(venv / "bin/python"), "litellm[proxy]"],
            check=True,
        )
    except subprocess.CalledProcessError as exc:
        print(f"LiteLLM skipped: building its venv failed ({exc})", file=sys.stderr)
        shutil.rmtree(venv, ignore_errors=True)
        return None
    return str(cli)


def litellm_version(cli: str) -> str:
    py = Path(cli).parent / "python"
    out = subprocess.run(
        [str(py), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True,
        text=True,
    )
    return out.stdout.strip() or "unknown"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=400, help="requests per level and round")
    ap.add_argument("--conc", default="1,16,64")
    ap.add_argument("--rounds", type=int, default=2, help="times each level is measured")
    ap.add_argument("--litellm", default="auto", help="auto, none, or a `litellm` CLI path")
    ap.add_argument(
        "--baseline", help="a cozy source tree (e.g. the previous head) served side by side"
    )
    args = ap.parse_args()
    concs = [int(c) for c in args.conc.split(",")]
    lite = litellm_cli(args.litellm)
    fake_port = free_port()
    fake = f"http://127.0.0.1:{fake_port}"
    env0 = {**os.environ, "PYTHONUNBUFFERED": "1"}
    fake_cmd = [PY, "-m", "cozy.testing", "--port", str(fake_port)]
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        fake_proc = stack.enter_context(process(fake_cmd, env0, fake + "/v1/models"))
        rows = [Target("direct", fake + "/v1/chat/completions", {}, "fake", fake_proc.pid)]
        trees: list[tuple[str, str | None]] = [("", None)]
        if args.baseline:
            trees.append((" [baseline]", str(Path(args.baseline).resolve())))
        for ctx in (False, True):
            for label, tree in trees:  # a baseline's rows interleave with this tree's
                home = tmp / f"cozy-{ctx}{'-base' if tree else ''}"
                home.mkdir()
                env = cozy_env(home, fake, ctx)
                if tree:
                    env["PYTHONPATH"] = os.pathsep.join(filter(None, [tree, env.get("PYTHONPATH")]))
                key = make_key(env)
                port = free_port()
                cmd = [PY, "-m", "cozy", "serve", "--port", str(port), "--workers", "1"]
                base = f"http://127.0.0.1:{port}"
                proc = stack.enter_context(process(cmd, env, base + "/health"))
                name = ("cozy (ctx on)" if ctx else "cozy (ctx off)") + label
                hdr = {"Authorization": f"Bearer {key}"}
                url = base + "/v1/chat/completions"
                rows.append(Target(name, url, hdr, "cozy/plain", proc.pid))
        if lite:
            cfg = tmp / "litellm.yaml"
            litellm_config(cfg, fake)
            port = free_port()
            master = "sk-bench-" + os.urandom(16).hex()
            cmd = [lite, "--config", str(cfg), "--port", str(port), "--num_workers", "1"]
            env = {
                **env0,
                "LITELLM_LOG": "ERROR",
                "LITELLM_TELEMETRY": "False",
                "LITELLM_MASTER_KEY": master,
            }
            base = f"http://127.0.0.1:{port}"
            try:
                # LiteLLM's proxy imports for a long while on a loaded machine
                health = base + "/health/liveliness"
                proc = stack.enter_context(process(cmd, env, health, timeout=400))
                hdr = {"Authorization": f"Bearer {master}"}
                name = f"litellm {litellm_version(lite)}"
                rows.append(Target(name, base + "/v1/chat/completions", hdr, "fake", proc.pid))
            except RuntimeError as exc:
                print(f"LiteLLM skipped: {exc}", file=sys.stderr)

        async def run_all() -> None:
            for r in range(args.rounds):
                for c in concs:
                    for t in rows:
                        await measure_level(t, c, max(args.requests, c * 8))
                    print(f"  round {r + 1}, conc {c} done", file=sys.stderr, flush=True)
                for t in rows:
                    body = {**BODY, "model": t.model}
                    t.ttft += await ttft(t.url, t.headers, body, min(args.requests, 100))

        asyncio.run(run_all())
    print(
        f"\nrequests per level and round: >= {args.requests}; rounds: {args.rounds}; one "
        "server process with one worker each; fake upstream with zero latency in its own "
        f"process; load average {' '.join(Path('/proc/loadavg').read_text().split()[:3])}\n"
    )
    table(rows, concs)


if __name__ == "__main__":
    main()
