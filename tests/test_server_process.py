"""`cozy serve` as a real process: keys from the CLI, --workers, graceful SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from helpers import wait_for_health, write_engines
from server_fixtures import free_port, server_env

from cozy.testing import FakeModelServer

COZY = [sys.executable, "-m", "cozy"]


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COZY, *args], env=server_env(home), capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def serve(cozy_home: Path, fake_model: FakeModelServer) -> Iterator[tuple[str, str, Any]]:
    write_engines(cozy_home, fake_model.url)
    key = _cli(cozy_home, "keys", "create", "--user", "alice").stdout.strip()
    assert key.startswith("sk-cozy-")
    port = free_port()
    proc = subprocess.Popen(
        [*COZY, "serve", "--port", str(port), "--workers", "2"],
        env=server_env(cozy_home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for_health(proc, url, 60)  # two worker processes start slowly on a loaded machine
    try:
        yield url, key, proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_serve_workers_keys_and_graceful_shutdown(
    serve: tuple[str, str, Any], fake_model: FakeModelServer, cozy_home: Path
) -> None:
    url, key, proc = serve
    c = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)
    # several requests land on both workers; all share one database
    sessions = set()
    for i in range(6):
        raw = c.chat.completions.with_raw_response.create(
            model="cozy/assistant", messages=[{"role": "user", "content": f"q{i}"}]
        )
        sessions.add(raw.headers["x-cozy-session"])
    assert len(sessions) == 6
    listed = _cli(cozy_home, "keys", "list", "--json").stdout
    assert '"user": "alice"' in listed and key not in listed
    # a slow stream is in flight when SIGTERM arrives: it finishes, then the server exits
    fake_model.tokens_per_second = 10
    fake_model.queue_reply(" ".join(f"w{i}" for i in range(30)))
    parts: list[str] = []

    def consume() -> None:
        stream = c.chat.completions.create(
            model="cozy/assistant",
            messages=[{"role": "user", "content": "long"}],
            stream=True,
        )
        for ch in stream:
            if ch.choices:
                parts.append(ch.choices[0].delta.content or "")

    t = threading.Thread(target=consume)
    t.start()
    deadline = time.monotonic() + 30  # SIGTERM only once the stream is surely in flight
    while not "".join(parts) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "".join(parts) and not "".join(parts).endswith("w29")
    proc.send_signal(signal.SIGTERM)
    t.join(20)
    assert "".join(parts).endswith("w29")
    assert proc.wait(20) == 0
    err = proc.stderr.read()
    assert '"message": "serving"' in err and "Traceback" not in err  # JSON: stderr is a pipe


def test_serve_refuses_no_auth_on_public_address(cozy_home: Path) -> None:
    write_engines(cozy_home, "http://127.0.0.1:9")
    r = _cli(cozy_home, "serve", "--host", "0.0.0.0", "--no-auth")
    assert r.returncode == 2
    assert "loopback" in r.stderr and "Traceback" not in r.stderr


def test_keys_and_token_cli(cozy_home: Path) -> None:
    import jwt

    write_engines(cozy_home, "http://127.0.0.1:9")
    r = _cli(cozy_home, "keys", "create", "--user", "root", "--role", "admin", "--json")
    assert r.returncode == 0 and '"role": "admin"' in r.stdout
    bad = _cli(cozy_home, "keys", "create", "--user", "x", "--role", "god")
    assert bad.returncode == 2 and "--role user" in bad.stderr
    tok = _cli(cozy_home, "token", "issue", "--user", "alice", "--ttl", "1h").stdout.strip()
    claims = jwt.decode(tok, options={"verify_signature": False})
    assert claims["sub"] == "alice" and 3500 < claims["exp"] - claims["iat"] <= 3600
    assert (cozy_home / "jwt_secret").stat().st_mode & 0o077 == 0
    r = _cli(cozy_home, "token", "issue", "--user", "alice", "--ttl", "soon")
    assert r.returncode == 2 and "30m" in r.stderr
    listed = _cli(cozy_home, "keys", "list", "--json").stdout
    kid = listed.split('"id": "')[1].split('"')[0]
    assert _cli(cozy_home, "keys", "revoke", kid).returncode == 0
    assert _cli(cozy_home, "keys", "revoke", "key_nope").returncode == 2
