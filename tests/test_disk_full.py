"""A full and a read-only disk under a real `cozy serve` and the real CLI: a small
tmpfs mounted for the test (needs root; skipped otherwise, failed under CI=true)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers import write_engines
from pg_redis_helpers import Instance, cozy_env

from cozy.testing import FakeModelServer

COZY = [sys.executable, "-m", "cozy"]
CHAT = {"model": "cozy/assistant", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"cannot mount a tmpfs in CI: {res.stderr}")
        pytest.skip(f"cannot mount a tmpfs (not root?): {res.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(directory: Path) -> Path:
    """Write until the disk is full (ENOSPC), like a log that ran away."""
    filler = directory / "filler.bin"
    with filler.open("wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass
    return filler


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COZY, *args], env=env, capture_output=True, text=True, timeout=90)


def test_full_then_read_only_disk(small_disk: Path, fake_model: FakeModelServer) -> None:
    home = small_disk / "home"
    home.mkdir()
    write_engines(home, fake_model.url)
    env = cozy_env(home, COZY_SERVER_RATE_LIMIT_RPM="1000", COZY_SERVER_IP_RATE_LIMIT_RPM="1000")
    assert _cli(env, "run", "--json", "first").returncode == 0
    inst = Instance(env, None, "--no-auth").start()
    try:
        url = inst.url
        assert httpx.post(f"{url}/v1/chat/completions", json=CHAT, timeout=30).status_code == 200
        assert httpx.get(f"{url}/ready", timeout=30).status_code == 200
        filler = _fill(small_disk)
        codes = [
            httpx.post(f"{url}/v1/chat/completions", json=CHAT, timeout=30).status_code
            for _ in range(10)
        ]
        assert 500 not in codes, codes  # never "internal error" (the rate limiter included)
        assert set(codes) <= {507, 503}, codes
        res = httpx.post(f"{url}/v1/chat/completions", json=CHAT, timeout=30)
        assert "full" in res.json()["error"]["message"], res.text
        ready = httpx.get(f"{url}/ready", timeout=30)
        assert ready.status_code == 503, ready.text
        store = ready.json()["checks"]["store"]
        assert not store["ok"] and "full" in store["detail"] and store["fix"]
        # the CLI: one line, a JSON object with --json, no traceback
        run = _cli(env, "run", "--json", "hello")
        assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
        error = json.loads(run.stdout.strip().splitlines()[-1])["error"]
        assert error["code"] == "storage_full" and "full" in error["message"]
        for args in (("sessions", "list"), ("doctor",)):
            out = _cli(env, *args)
            assert "Traceback" not in out.stderr + out.stdout, (args, out.stderr[-2000:])
        listed = _cli(env, "sessions", "list")  # reading needs no space: it still works
        assert listed.returncode == 0 and "first" in listed.stdout, listed.stderr
        filler.unlink()  # space again: ready and answering
        assert httpx.get(f"{url}/ready", timeout=30).status_code == 200
        assert httpx.post(f"{url}/v1/chat/completions", json=CHAT, timeout=30).status_code == 200
    finally:
        inst.stop()
    # read-only: the same disk remounted read-only (once nothing holds it open for writing)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    try:
        run = _cli(env, "run", "--json", "hello")
        assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
        error = json.loads(run.stdout.strip().splitlines()[-1])["error"]
        assert error["code"] == "storage_read_only", error
        assert "cannot write" in error["message"]
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
