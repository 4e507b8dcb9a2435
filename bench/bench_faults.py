"""Time to an answer or an error under each fault, through real `cozy run` / `cozy serve`
processes: a silent model upstream, a frozen Postgres, a frozen Redis (a TCP proxy that
accepts and never forwards, as a hung host does), and SIGTERM with N streams in flight.

    .venv/bin/python bench/bench_faults.py [--streams 10] [--timeout 5]

Needs the local Postgres (127.0.0.1:5432, db `test`) and Redis (127.0.0.1:6379) for the
server-mode rows. Prints one table; wall times depend on the machine's load.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from helpers import write_engines  # noqa: E402
from pg_redis_helpers import (  # noqa: E402
    COZY,
    Instance,
    Proxy,
    cli,
    cozy_env,
    free_port,
    pg_database,
    redis_db,
)

from cozy.testing import FakeModelServer  # noqa: E402

NO_CONTEXT = "memory: {provider: none}\nprofile: {provider: none}\nknowledge: {provider: none}\n"
CHAT = {"model": "cozy/assistant", "messages": [{"role": "user", "content": "hi"}]}
ROWS: list[list[Any]] = []


def timed(method: str, url: str, **kw: Any) -> tuple[int, float]:
    started = time.monotonic()
    try:
        status = httpx.request(method, url, timeout=600, **kw).status_code
    except httpx.HTTPError:
        status = -1
    return status, time.monotonic() - started


def silent_upstream(fake: FakeModelServer, home: Path, timeout: float) -> None:
    """The model server accepts and never sends headers (max_retries 2)."""
    write_engines(home, fake.url)
    path = home / "engines.yaml"
    path.write_text(
        path.read_text()
        .replace("ai:\n", f"ai:\n  timeout: {timeout}\n", 1)
        .replace("max_retries: 0", "max_retries: 2")
    )
    started = time.monotonic()  # the same command against a healthy model: start-up cost
    cli(cozy_env(home), "run", "--json", "--no-context", "hello", timeout=600)
    ROWS.append(
        [
            "healthy upstream (cozy run)",
            "baseline",
            f"{time.monotonic() - started:.1f}s",
            "answered (process start-up included)",
            "",
        ]
    )
    fake.fail_next(hang=True, times=100, path="/api/chat")
    started = time.monotonic()
    res = cli(cozy_env(home), "run", "--json", "--no-context", "hello", timeout=600)
    took = time.monotonic() - started
    ok = res.returncode == 1 and "did not answer within" in res.stdout
    ROWS.append(
        [
            "silent upstream (cozy run)",
            f"ai.timeout {timeout:g}s, 2 retries",
            f"{took:.1f}s",
            "error naming ai.timeout" if ok else res.stdout[-120:],
            f"was {3 * timeout:g}s+ (3 x timeout)",
        ]
    )
    fake.reset()


def frozen_postgres(fake: FakeModelServer, home: Path, pg: str, redis: str) -> None:
    proxy = Proxy("127.0.0.1", 5432)
    write_engines(home, fake.url, NO_CONTEXT)
    env = cozy_env(
        home,
        COZY_DATABASE_URL=pg.replace(":5432/", f":{proxy.port}/"),
        COZY_REDIS_URL=redis,
        COZY_SERVER_RATE_LIMIT_RPM="0",
        COZY_SERVER_IP_RATE_LIMIT_RPM="0",
    )
    inst = Instance(env, None, "--no-auth").start()
    try:
        assert timed("POST", f"{inst.url}/v1/chat/completions", json=CHAT)[0] == 200
        proxy.freeze()
        for what, method, url, kw in (
            ("chat", "POST", f"{inst.url}/v1/chat/completions", {"json": CHAT}),
            ("sessions", "GET", f"{inst.url}/v1/chat/sessions", {}),
            ("/ready", "GET", f"{inst.url}/ready", {}),
        ):
            status, took = timed(method, url, **kw)
            ROWS.append(
                [
                    f"frozen Postgres: {what}",
                    "defaults: connect 5s, statement 15s",
                    f"{took:.1f}s",
                    f"HTTP {status}",
                    "was: hung for the whole outage",
                ]
            )
        proxy.thaw()
        started = time.monotonic()
        while timed("GET", f"{inst.url}/v1/chat/sessions")[0] != 200:
            time.sleep(0.1)
        ROWS.append(["Postgres back", "", f"{time.monotonic() - started:.1f}s", "200 again", ""])
    finally:
        inst.stop()
        proxy.close()


def frozen_redis(fake: FakeModelServer, home: Path, pg: str, redis: str) -> None:
    proxy = Proxy("127.0.0.1", 6379)
    write_engines(home, fake.url, NO_CONTEXT)
    env = cozy_env(
        home,
        COZY_DATABASE_URL=pg,
        COZY_REDIS_URL=redis.replace(":6379/", f":{proxy.port}/"),
        COZY_SERVER_RATE_LIMIT_RPM="100000",
        COZY_SERVER_IP_RATE_LIMIT_RPM="0",
    )
    inst = Instance(env, None, "--no-auth").start()
    url = f"{inst.url}/v1/chat/completions"
    try:
        for label, freeze in (("Redis healthy", False), ("frozen Redis", True)):
            if freeze:
                proxy.freeze()
            with concurrent.futures.ThreadPoolExecutor(20) as pool:
                results = list(pool.map(lambda _: timed("POST", url, json=CHAT), range(100)))
            took = sorted(t for _, t in results)
            ok = sum(1 for s, _ in results if s == 200)
            ROWS.append(
                [
                    f"{label}: 100 chats",
                    "20 concurrent",
                    f"p50 {took[49]:.2f}s, max {took[-1]:.2f}s",
                    f"{ok}/100 answered",
                    "was p50 19.4s (sync client)" if freeze else "",
                ]
            )
        proxy.thaw()
    finally:
        inst.stop()
        proxy.close()


def sigterm_streams(fake: FakeModelServer, home: Path, n: int) -> None:
    write_engines(home, fake.url, NO_CONTEXT)
    fake.tokens_per_second = 10
    for _ in range(n):
        fake.queue_reply(" ".join(f"w{i}" for i in range(400)))
    port = free_port()
    env = cozy_env(
        home,
        COZY_SERVER_GRACEFUL_TIMEOUT="2",
        COZY_SERVER_RATE_LIMIT_RPM="0",
        COZY_SERVER_IP_RATE_LIMIT_RPM="0",
    )
    proc = subprocess.Popen(
        [*COZY, "serve", "--port", str(port), "--no-auth"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    while True:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    got = [0] * n

    def consume(i: int) -> None:
        body = {**CHAT, "stream": True}
        try:
            with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=60) as r:
                for line in r.iter_lines():
                    if line.startswith("data:"):
                        got[i] += 1
        except httpx.HTTPError:
            pass

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    while not all(g >= 3 for g in got):
        time.sleep(0.05)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(120)
    took = time.monotonic() - started
    for t in threads:
        t.join(10)
    saved = asyncio.run(_interrupted(home))
    ROWS.append(
        [
            f"SIGTERM, {n} streams in flight",
            "grace 2s",
            f"exit after {took:.1f}s",
            f"{saved}/{n} partial answers saved as interrupted",
            "was 1/10 saved",
        ]
    )
    fake.reset()


async def _interrupted(home: Path) -> int:
    from cozy.runtime import Runtime
    from cozy.settings import Settings

    rt = await Runtime.open(Settings(home=home), engines=False)
    try:
        count = 0
        for s in await rt.store.list_sessions("local", limit=1000):
            msgs = await rt.store.list_messages(s.id)
            count += sum(1 for m in msgs if m.role == "assistant" and m.status == "interrupted")
        return count
    finally:
        await rt.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=5.0, help="ai.timeout for the row")
    args = parser.parse_args()
    with FakeModelServer() as fake, tempfile.TemporaryDirectory() as tmp:
        homes = [Path(tmp) / f"h{i}" for i in range(4)]
        for h in homes:
            h.mkdir()
        silent_upstream(fake, homes[0], args.timeout)
        sigterm_streams(fake, homes[1], args.streams)
        with pg_database() as pg, redis_db(14) as redis:
            frozen_postgres(fake, homes[2], pg, redis)
            frozen_redis(fake, homes[3], pg, redis)
    header = ["fault", "settings", "time", "outcome", "before (issue #20)"]
    widths = [max(len(str(r[i])) for r in [header, *ROWS]) for i in range(len(header))]
    print()
    for row in [header, ["-" * w for w in widths], *ROWS]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
