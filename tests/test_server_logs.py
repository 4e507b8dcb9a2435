"""`cozy serve --workers 2` as a real process: access lines from the workers, JSON only."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from helpers import write_engines

from cozy.testing import FakeModelServer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_workers_log_access_lines_as_json(cozy_home: Path, fake_model: FakeModelServer) -> None:
    write_engines(cozy_home, fake_model.url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COZY_")}
    env.update(COZY_HOME=str(cozy_home), COZY_CONFIG=str(cozy_home / "engines.yaml"))
    env["PYTHONWARNINGS"] = "always"
    key = subprocess.run(
        [sys.executable, "-m", "cozy", "keys", "create", "--user", "alice"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cozy", "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90  # two workers start slowly on a loaded machine
        while True:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "serve did not start"
            time.sleep(0.2)
        headers = {"Authorization": f"Bearer {key}"}
        for _ in range(6):
            httpx.get(url + "/v1/models", headers=headers, timeout=30)
        httpx.get(url + "/nope/abc", headers=headers, timeout=30)
        body = {"model": "cozy", "messages": [{"role": "user", "content": "hi"}]}
        assert httpx.post(url + "/v1/chat/completions", json=body, headers=headers, timeout=60)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate(timeout=10)
    lines = [line for line in err.splitlines() if line.strip()]
    records = []
    for line in lines:
        records.append(json.loads(line))  # every line is JSON: no text banner, no warnings
    access = [r for r in records if r.get("logger") == "cozy.access"]
    routes = {r.get("route") for r in access}
    assert {"/v1/models", "/v1/chat/completions", "other"} <= routes, routes
    assert all(r.get("request_id", "").startswith("req-") for r in access)
    assert any(r.get("message") == "serving" for r in records)
