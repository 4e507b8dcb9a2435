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


def start_server(port: int, grants: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, str(OAUTH_SERVER), str(port), str(TTL)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "OAUTH_LOG": str(grants)},
    )
    wait_port(port)
    return proc


class OAuthServer:
    """The test server process, restartable on the same port (it then forgets every
    client and token it issued)."""

    def __init__(self, port: int, grants: Path) -> None:
        self.port, self.grants = port, grants
        self.proc = start_server(port, grants)

    def restart(self) -> None:
        self.stop()
        self.proc = start_server(self.port, self.grants)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(5)


@pytest.fixture
def oauth_home(
    cozy_home: Path, fake_model: FakeModelServer, tmp_path: Path
) -> Iterator[tuple[Path, OAuthServer]]:
    server = OAuthServer(free_port(), tmp_path / "grants.log")
    try:
        entry = {"url": f"http://127.0.0.1:{server.port}/mcp", "oauth": True}
        write_engines(
            cozy_home,
            fake_model.url,
            f"tools:\n  provider: mcp\n  servers:\n    oa: {json.dumps(entry)}\n",
        )
        yield cozy_home, server
    finally:
        server.stop()


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


def test_login_then_calls_and_refresh(oauth_home: tuple[Path, OAuthServer]) -> None:
    home, server = oauth_home
    grants = server.grants
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
    # (on a slow machine this call may already have refreshed the token)
    assert grants.read_text().split()[0] == "authorization_code"
    assert tools_check()["status"] == "ok"

    # the access token runs out: the next command refreshes it, no login
    time.sleep(TTL + 1)
    r = cozy("tools", "call", "oa.secret")
    assert r.returncode == 0 and r.stdout.strip() == "the secret is 42", r.stderr
    # one login; every later token came from a refresh
    [first, *later] = grants.read_text().split()
    assert first == "authorization_code" and later and set(later) == {"refresh_token"}
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


def test_tokens_the_server_forgot_ask_for_a_new_login(
    oauth_home: tuple[Path, OAuthServer],
) -> None:
    """The server restarts and knows none of its tokens (as after a revocation): the
    refresh is refused, and the user is told to log in again, once, without a traceback."""
    _home, server = oauth_home
    code, _out, err = login()
    assert code == 0, err
    server.restart()
    time.sleep(TTL + 1)  # expired: the stored refresh token is tried, and refused
    r = cozy("tools", "call", "oa.secret")
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.count("run `cozy tools login oa`") == 1, r.stderr
    code, _out, err = login()
    assert code == 0, err
    r = cozy("tools", "call", "oa.secret")
    assert r.returncode == 0 and r.stdout.strip() == "the secret is 42", r.stderr
