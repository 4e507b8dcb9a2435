"""OAuth 2.1 for HTTP MCP servers, as a user meets it: a server that needs a login is
refused with the command to run, `cozy tools login NAME` prints the URL, the "browser"
(this test, following the redirects like one) allows cozy, the tokens are stored 0600,
calls then work, and an expired access token is refreshed without a second login.
Against tests/mcp_servers/oauth_server.py: the MCP SDK's authorization-server routes
over an in-memory provider that approves at once."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import write_engines
from mcp_servers.helpers import free_port, wait_port
from tools_cli import cozy

from cozy.testing import FakeModelServer

OAUTH_SERVER = Path(__file__).parent / "mcp_servers" / "oauth_server.py"
TTL = 15  # seconds an access token lives (cozy refreshes it 10% early)


@pytest.fixture
def oauth_home(
    cozy_home: Path, fake_model: FakeModelServer, tmp_path: Path
) -> Iterator[tuple[Path, Path]]:
    port = free_port()
    grants = tmp_path / "grants.log"
    proc = subprocess.Popen(
        [sys.executable, str(OAUTH_SERVER), str(port), str(TTL)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "OAUTH_LOG": str(grants)},
    )
    try:
        wait_port(port)
        server = {"url": f"http://127.0.0.1:{port}/mcp", "oauth": True}
        write_engines(
            cozy_home,
            fake_model.url,
            f"tools:\n  provider: mcp\n  servers:\n    oa: {json.dumps(server)}\n",
        )
        yield cozy_home, grants
    finally:
        proc.kill()
        proc.wait(5)


def login(timeout: float = 90) -> tuple[int, str, str]:
    """`cozy tools login oa --no-browser`, with this test as the browser."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "cozy", "tools", "login", "oa", "--no-browser"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stderr is not None
        seen = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            seen.append(line)
            if line.startswith("http://127.0.0.1"):
                # what a browser does: the consent page (approved at once here)
                # redirects to cozy's loopback listener with the code
                try:
                    with urllib.request.urlopen(line.strip(), timeout=30) as page:
                        assert page.read() == b"cozy: logged in, you can close this tab"
                except urllib.error.HTTPError as exc:
                    raise AssertionError(f"{line.strip()}: {exc} {exc.read()!r}") from exc
                break
        out, err = proc.communicate(timeout=max(deadline - time.monotonic(), 1))
        return proc.returncode, out, "".join(seen) + err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def tools_check() -> dict[str, str]:
    """`cozy doctor`'s line for the tools engine (it starts no server)."""
    r = cozy("doctor", "--json")
    return next(c for c in json.loads(r.stdout) if c["name"].startswith("tools"))


def test_login_then_calls_and_refresh(oauth_home: tuple[Path, Path]) -> None:
    home, grants = oauth_home
    # no token yet: refused, and told what to run
    r = cozy("tools", "call", "oa.secret")
    assert r.returncode != 0
    assert "cozy tools login oa" in r.stderr and "Traceback" not in r.stderr, r.stderr

    before = tools_check()  # a tools engine that is not ready is a warning, not a failure
    assert before["status"] == "warn", before
    assert "oa: not logged in (OAuth): run `cozy tools login oa`" in before["detail"]
    assert "cozy tools login NAME" in before["fix"]

    code, out, err = login()
    assert code == 0, err
    assert "open this URL to let cozy use 'oa'" in err
    assert out.startswith("logged in to oa (1 tools)"), out
    tokens = home / "mcp-auth" / "oa.json"
    assert stat.S_IMODE(tokens.stat().st_mode) == 0o600
    assert stat.S_IMODE(tokens.parent.stat().st_mode) == 0o700
    saved = json.loads(tokens.read_text())
    assert saved["tokens"]["refresh_token"] and saved["client"]["client_id"]

    r = cozy("tools", "call", "oa.secret")
    assert r.returncode == 0 and r.stdout.strip() == "the secret is 42", r.stderr
    assert grants.read_text().split() == ["authorization_code"]
    assert tools_check()["status"] == "ok"

    # the access token runs out: the next command refreshes it, no login
    time.sleep(TTL + 1)
    r = cozy("tools", "call", "oa.secret")
    assert r.returncode == 0 and r.stdout.strip() == "the secret is 42", r.stderr
    assert grants.read_text().split() == ["authorization_code", "refresh_token"]
    assert (
        json.loads(tokens.read_text())["tokens"]["access_token"] != saved["tokens"]["access_token"]
    )


def test_login_needs_an_oauth_server(cozy_home: Path, fake_model: FakeModelServer) -> None:
    write_engines(
        cozy_home,
        fake_model.url,
        "tools:\n  provider: mcp\n  servers:\n"
        "    plain: {url: 'http://127.0.0.1:9/mcp'}\n"
        "    local: {command: 'true', oauth: true}\n",
    )
    r = cozy("tools", "login", "plain")
    assert r.returncode != 0 and "does not use OAuth" in r.stderr
    assert "oauth: true" in r.stderr
    r = cozy("tools", "servers", "--json")
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    assert "`oauth` is for servers with a `url`" in rows["local"]["last_error"]
