"""Small CLI behaviours from #22, as a user runs them (subprocesses)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import write_engines
from test_cli import cozy

from cozy.testing import FakeModelServer


@pytest.fixture
def configured(cozy_home: Path, fake_model: FakeModelServer) -> FakeModelServer:
    write_engines(cozy_home, fake_model.url)
    return fake_model


def test_unknown_personality_is_a_usage_error() -> None:
    r = cozy("personalities", "show", "nope")
    assert r.returncode == 2 and "known personalities" in r.stderr


def test_search_without_match_says_so(configured: FakeModelServer) -> None:
    assert cozy("run", "hello", stdin="").returncode == 0
    r = cozy("sessions", "list", "-q", "zzz-no-such-thing")
    assert r.returncode == 0 and "no session matches 'zzz-no-such-thing'" in r.stdout
    r = cozy("sessions", "summary", "last", "--regenerate")
    assert r.returncode == 0, r.stderr
    assert "--regenerate" not in r.stdout and "nothing to summarise" in r.stdout


def test_a_reader_that_stops_early_is_not_an_error(tmp_path: Path) -> None:
    for i in range(40):
        (tmp_path / f"note{i}.md").write_text(f"# Note {i}\n\nkey rotation step {i}\n")
    assert cozy("knowledge", "add", str(tmp_path)).returncode == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "cozy", "knowledge", "search", "key rotation", "-n", "40"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ),
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()  # like `| head -1`
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert first.strip() and proc.returncode == 0, err


def test_a_damaged_database_names_a_fix(configured: FakeModelServer, cozy_home: Path) -> None:
    assert cozy("run", "hello", stdin="").returncode == 0
    db = cozy_home / "cozy.db"
    with db.open("r+b") as fh:
        fh.seek(4096 * 3)
        fh.write(b"\xff" * 4096 * 4)
    r = cozy("run", "hello again", stdin="")
    assert r.returncode == 1 and ".recover" in r.stderr and "untouched" in r.stderr


def test_doctor_model_reachable_only_when_served(configured: FakeModelServer) -> None:
    r = cozy("doctor", env={"COZY_MODEL": "ollama:not-pulled"}, timeout=300)
    assert r.returncode == 1
    text = " ".join(r.stdout.split())  # rich wraps long lines
    assert "FAIL model: ollama:not-pulled: the server is up but does not serve" in text
    assert "fix: ollama pull not-pulled" in text
    # extras named in fixes keep their brackets (they are not rich markup)
    assert "uv pip install 'cozy'" not in text
