"""Shared by the `cozy tools` CLI tests: the CLI in a detached session, a home configured
with the MCP test server over stdio, and a check that no server outlives its cozy."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from helpers import write_engines
from mcp_servers.helpers import SERVER

from cozy.testing import FakeModelServer

PROFILE = """\
id: tester
name: Tester
system_prompt: You test tools.
tools: ["builtin.*", "test.*"]
"""


def cozy(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    # a new session: no controlling terminal, so nothing can prompt on /dev/tty
    return subprocess.run(
        [sys.executable, "-m", "cozy", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ),
        start_new_session=True,
    )


def our_servers(home: Path) -> list[psutil.Process]:
    """Test MCP servers started for this test (they run with cwd = COZY_HOME)."""
    out = []
    for proc in psutil.process_iter(["cmdline", "cwd", "status"]):
        with contextlib.suppress(psutil.Error):
            cmd = " ".join(proc.info["cmdline"] or [])
            if (
                SERVER.name in cmd
                and proc.info["cwd"] == str(home)
                and proc.info["status"] != psutil.STATUS_ZOMBIE
            ):
                out.append(proc)
    return out


@pytest.fixture
def configured(cozy_home: Path, fake_model: FakeModelServer) -> Iterator[FakeModelServer]:
    server = f"{{command: '{sys.executable}', args: ['{SERVER}'], cwd: '{cozy_home}'}}"
    write_engines(
        cozy_home,
        fake_model.url,
        f"tools:\n  provider: mcp\n  timeout: 10\n  servers:\n    test: {server}\n",
    )
    (cozy_home / "profiles").mkdir()
    (cozy_home / "profiles" / "tester.yaml").write_text(PROFILE, encoding="utf-8")
    yield fake_model
    deadline = time.monotonic() + 30  # generous: a loaded machine reaps slowly
    while our_servers(cozy_home) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert our_servers(cozy_home) == [], "an MCP server outlived its cozy process"
