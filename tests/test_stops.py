"""Stops that keep work: real signals to real `cozy run` / `cozy serve` processes while
answers stream; every partial answer is stored as interrupted."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest
from helpers import assistant_rows, wait_for_health, write_engines
from server_fixtures import free_port, server_env

from cozy.testing import FakeModelServer

COZY = [sys.executable, "-m", "cozy"]
LONG = " ".join(f"w{i}" for i in range(400))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_signal_to_cozy_run_saves_the_partial_answer(
    sig: signal.Signals, cozy_home: Path, fake_model: FakeModelServer
) -> None:
    write_engines(cozy_home, fake_model.url)
    fake_model.tokens_per_second = 20
    fake_model.queue_reply(LONG)
    proc = subprocess.Popen(
        [*COZY, "run", "--json", "--stream", "--no-context", "tell me a long story"],
        env=server_env(cozy_home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # signal only once text is surely streaming
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "w3" in "".join(lines):
            break
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    lines.extend(out.splitlines())
    assert proc.returncode == 128 + sig, err[-2000:]
    last = json.loads(lines[-1])  # the run's own error object: interrupted, partial kept
    assert last["error"]["code"] in ("cancelled", "stopped"), last
    assert "saved as interrupted" in last["error"]["message"]
    assert f"stopped by {sig.name}" in err and "Traceback" not in err
    rows = asyncio.run(assistant_rows(cozy_home))
    assert [r.status for r in rows] == ["interrupted"]
    assert rows[0].content.startswith("w0 w1") and not rows[0].content.endswith("w399")


def test_sigterm_to_cozy_serve_saves_every_stream_in_flight(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    write_engines(cozy_home, fake_model.url)
    fake_model.tokens_per_second = 10  # each answer would take 40 s
    for _ in range(10):
        fake_model.queue_reply(LONG)
    port = free_port()
    env = {**server_env(cozy_home), "COZY_SERVER_GRACEFUL_TIMEOUT": "1"}
    proc = subprocess.Popen(
        [*COZY, "serve", "--port", str(port), "--no-auth"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for_health(proc, url, 60)
    received = [""] * 10
    client = openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=60)

    def consume(i: int) -> None:
        try:
            stream = client.chat.completions.create(
                model="cozy", messages=[{"role": "user", "content": f"story {i}"}], stream=True
            )
            for ch in stream:
                if ch.choices:
                    received[i] += ch.choices[0].delta.content or ""
        except (openai.APIError, httpx.HTTPError):
            pass  # the server went away mid-stream: expected

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while not all(r.count("w") >= 2 for r in received) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(received), received
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    stopped_in = time.monotonic() - started
    for t in threads:
        t.join(10)
    assert stopped_in < 1 + 15, stopped_in  # grace 1 s, then interrupt-and-save
    rows = asyncio.run(assistant_rows(cozy_home))
    assert len(rows) == 10, [(r.status, r.content[:20]) for r in rows]
    assert {r.status for r in rows} == {"interrupted"}
    assert all(r.content.startswith("w0 w1") for r in rows)
