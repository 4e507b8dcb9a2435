"""What `cozy serve` adds on top of the model, side by side in one run.

    .venv/bin/python bench/bench_server.py [--requests 400] [--conc 1,16,64]
        [--litellm /path/to/venv/bin/litellm]

Targets, all talking to the same fake upstream (its own process, zero latency):
  direct          the fake model's /v1/chat/completions
  cozy (ctx off)  cozy serve, knowledge/profile/memory engines off
  cozy (ctx on)   cozy serve, local knowledge/profile/memory engines on
  litellm         LiteLLM's proxy (only when --litellm points at its CLI; install it
                  in a separate venv: `uv venv /tmp/ll && uv pip install --python
                  /tmp/ll/bin/python 'litellm[proxy]'`)
Each server runs as one process with one worker. Reported: latency p50/p99 and the
latency added over direct, throughput (req/s) at each concurrency, and streaming
time-to-first-token (TTFT) p50 and its overhead over direct at concurrency 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

PY = sys.executable
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
def process(cmd: list[str], env: dict[str, str], health: str) -> Iterator[None]:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_up(health, proc)
        yield
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
        for _ in range(min(conc * 2, 20)):  # warm up connections and caches
            await one(client, url, body)
        queue = list(range(n))
        out: list[float] = []

        async def worker() -> None:
            while queue:
                queue.pop()
                out.append(await one(client, url, body))

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


async def measure(
    name: str, url: str, headers: dict[str, str], model: str, concs: list[int], n: int
) -> dict[str, Any]:
    body = {**BODY, "model": model}
    row: dict[str, Any] = {"name": name, "conc": {}}
    for c in concs:
        lat, rps = await load(url, headers, body, c, max(n, c * 8))
        row["conc"][c] = (pct(lat, 0.5), pct(lat, 0.99), rps)
    row["ttft"] = statistics.median(await ttft(url, headers, body, min(n, 100))) * 1000
    print(f"  measured {name}", file=sys.stderr, flush=True)
    return row


def table(rows: list[dict[str, Any]], concs: list[int]) -> None:
    direct = rows[0]
    head = f"{'target':<16}{'conc':>5}{'p50 ms':>9}{'p99 ms':>9}{'+p50 ms':>9}{'+p99 ms':>9}"
    print(head + f"{'req/s':>9}{'x direct':>9}")
    for row in rows:
        for c in concs:
            p50, p99, rps = row["conc"][c]
            d50, d99, drps = direct["conc"][c]
            print(
                f"{row['name']:<16}{c:>5}{p50:>9.2f}{p99:>9.2f}{p50 - d50:>9.2f}"
                f"{p99 - d99:>9.2f}{rps:>9.0f}{rps / drps:>9.2f}"
            )
    print()
    print(f"{'target':<16}{'TTFT p50 ms':>12}{'overhead ms':>12}")
    for row in rows:
        print(f"{row['name']:<16}{row['ttft']:>12.2f}{row['ttft'] - direct['ttft']:>12.2f}")


def litellm_config(path: Path, fake: str) -> None:
    path.write_text(
        "model_list:\n  - model_name: fake\n    litellm_params:\n"
        f"      model: openai/fake\n      api_base: {fake}/v1\n      api_key: bench\n"
        "litellm_settings:\n  telemetry: false\n  drop_params: true\n",
        encoding="utf-8",
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--conc", default="1,16,64")
    ap.add_argument("--litellm", default=None, help="path to the `litellm` CLI (own venv)")
    args = ap.parse_args()
    concs = [int(c) for c in args.conc.split(",")]
    fake_port = free_port()
    fake = f"http://127.0.0.1:{fake_port}"
    rows: list[dict[str, Any]] = []
    env0 = {**os.environ, "PYTHONUNBUFFERED": "1"}
    fake_cmd = [PY, "-m", "cozy.testing", "--port", str(fake_port)]
    with process(fake_cmd, env0, fake + "/v1/models"), tempfile.TemporaryDirectory() as tmp:

        async def run_all() -> None:
            rows.append(
                await measure(
                    "direct", fake + "/v1/chat/completions", {}, "fake", concs, args.requests
                )
            )
            for ctx in (False, True):
                home = Path(tmp) / f"cozy-{ctx}"
                home.mkdir()
                env = cozy_env(home, fake, ctx)
                key = make_key(env)
                port = free_port()
                cmd = [PY, "-m", "cozy", "serve", "--port", str(port)]
                base = f"http://127.0.0.1:{port}"
                with process(cmd, env, base + "/health"):
                    name = "cozy (ctx on)" if ctx else "cozy (ctx off)"
                    hdr = {"Authorization": f"Bearer {key}"}
                    url = base + "/v1/chat/completions"
                    rows.append(
                        await measure(name, url, hdr, "cozy/assistant", concs, args.requests)
                    )
            if args.litellm:
                cfg = Path(tmp) / "litellm.yaml"
                litellm_config(cfg, fake)
                port = free_port()
                master = "sk-bench-" + os.urandom(16).hex()
                cmd = [args.litellm, "--config", str(cfg), "--port", str(port)]
                env = {
                    **env0,
                    "LITELLM_LOG": "ERROR",
                    "LITELLM_TELEMETRY": "False",
                    "LITELLM_MASTER_KEY": master,
                }
                base = f"http://127.0.0.1:{port}"
                try:
                    with process([*cmd, "--num_workers", "1"], env, base + "/health/liveliness"):
                        url = base + "/v1/chat/completions"
                        hdr = {"Authorization": f"Bearer {master}"}
                        rows.append(
                            await measure("litellm", url, hdr, "fake", concs, args.requests)
                        )
                except RuntimeError as exc:
                    print(f"LiteLLM skipped: {exc}", file=sys.stderr)

        asyncio.run(run_all())
    print(
        f"\nrequests per level: >= {args.requests}; one server process each; fake upstream "
        "with zero latency in its own process\n"
    )
    table(rows, concs)


if __name__ == "__main__":
    main()
