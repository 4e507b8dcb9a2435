"""MCP server lifecycle and policy against misbehaving servers (tests/mcp_servers/faults.py):
only reachable servers start, hung ones degrade the turn, stderr is bounded, process
groups die with cozy, hints are untrusted, reserved names, hidden task-only tools."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from helpers import write_engines
from mcp_servers.helpers import SERVER
from tools_cli import cozy

from cozy.core.types import Caller
from cozy.engines.base import ToolContext
from cozy.engines.tools.mcp_config import import_claude_config, parse_server
from cozy.engines.tools.mcp_provider import MCPTools
from cozy.testing import FakeModelServer

FAULTS = Path(__file__).parent / "mcp_servers" / "faults.py"
CTX = ToolContext(caller=Caller())


def fault(mode: str, **extra: Any) -> dict[str, Any]:
    return {"command": sys.executable, "args": [str(FAULTS), mode], **extra}


def _status(rows: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(r for r in rows if r["name"] == name)


async def test_untrusted_hints_hidden_task_tools_and_long_names() -> None:
    eng = MCPTools({"servers": {"f": fault("ok"), "trusting": fault("ok", trust_annotations=True)}})
    try:
        specs = {s.name: s for s in await eng.list_tools()}
        # readOnlyHint + openWorldHint: the riskier hint wins unless the server is trusted
        assert specs["f.hint_clash"].level == "network"
        assert specs["trusting.hint_clash"].level == "read-only"
        # a tool that needs MCP tasks is not offered, and the reason is kept
        assert "f.task_only" not in specs
        assert "taskSupport" in eng.hidden["f"]["task_only"]
        rows = await eng.servers_status()
        assert "task_only" in _status(rows, "f")["hidden_tools"]
        # a name too long for model APIs is shortened, and still calls the right tool
        [long] = [s for s in specs.values() if s.server == "f" and "far_too_long" in s.name]
        assert len(long.wire_name) <= 64
        out = await eng.execute_tool(long.name, {}, CTX)
        assert out.content.startswith("ran a_tool_with_a_name_far_too_long") and not out.is_error
    finally:
        await eng.close()


def test_reserved_names_disabled_and_unset_header_variables(tmp_path: Path) -> None:
    for name in ("memory", "builtin", "knowledge"):
        cfg = parse_server(name, fault("ok"))
        assert cfg.error and "reserved for cozy's built-in tools" in cfg.error
        assert f"'{name}-mcp'" in cfg.error
    cfg = parse_server("off", {**fault("ok"), "disabled": True})
    assert cfg.disabled and cfg.error is None
    cfg = parse_server("web", {"url": "http://x/mcp", "headers": {"Authorization": "Bearer "}})
    assert cfg.error and "probably not set" in cfg.error
    cfg = parse_server(
        "web", {"url": "http://x/mcp", "headers": {"Authorization": "Bearer ${NOPE_TOKEN}"}}
    )
    assert cfg.error and "NOPE_TOKEN is not set" in cfg.error
    claude = tmp_path / "c.json"
    claude.write_text(json.dumps({"mcpServers": {"memory": {"command": "npx"}}}))
    renames: dict[str, str] = {}
    assert list(import_claude_config(claude, renames)) == ["memory-mcp"]
    assert renames == {"memory": "memory-mcp"}


async def test_disabled_is_not_failed_and_doctor_sees_missing_commands() -> None:
    eng = MCPTools(
        {
            "servers": {
                "off": {**fault("ok"), "disabled": True},
                "missing": {"command": "cozy-no-such-command-xyz"},
            }
        }
    )
    try:
        rows = await eng.servers_status()
        assert _status(rows, "off")["state"] == "disabled"
        health = await eng.health_check()  # nothing started, yet the bad command is found
        assert not health.ok and "missing" in health.detail and "off" not in health.detail
        assert health.fix and "engines.yaml" in health.fix
        assert all(r["pid"] is None for r in await eng.servers_status())
    finally:
        await eng.close()


async def test_stderr_is_a_bounded_ring() -> None:
    import asyncio

    eng = MCPTools({"servers": {"flood": fault("flood")}})
    try:
        await eng.list_tools()
        conn = eng._conns["flood"]
        deadline = time.monotonic() + 60
        while conn.process.stderr is not None and conn.process.stderr_total() < 4_000_000:
            assert time.monotonic() < deadline, "the flood server wrote less than expected"
            await asyncio.sleep(0.1)
        assert conn.process.stderr is not None
        kept = conn.stderr_text()
        assert len(kept.encode()) <= 64 * 1024 and "flood xxxx" in kept  # the newest lines
        row = _status(await eng.servers_status(), "flood")
        assert row["stderr_bytes"] >= 4_000_000
    finally:
        await eng.close()


@pytest.fixture
def fault_home(cozy_home: Path, fake_model: FakeModelServer) -> Path:
    servers = {
        "test": {"command": sys.executable, "args": [str(SERVER)], "cwd": str(cozy_home)},
        "hang": {**fault("hang"), "cwd": str(cozy_home), "startup_timeout": 3},
        "spawn": {**fault("spawn"), "cwd": str(cozy_home)},
        "crash": {**fault("crash"), "cwd": str(cozy_home)},
        "notmcp": {**fault("notmcp"), "cwd": str(cozy_home)},
    }
    lines = "".join(f"    {k}: {json.dumps(v)}\n" for k, v in servers.items())
    write_engines(cozy_home, fake_model.url, f"tools:\n  provider: mcp\n  servers:\n{lines}")
    (cozy_home / "profiles").mkdir()
    for pid, tools in (("tester", '["test.*"]'), ("hanger", '["test.*", "hang.*"]')):
        (cozy_home / "profiles" / f"{pid}.yaml").write_text(
            f"id: {pid}\nname: {pid}\nsystem_prompt: You test.\ntools: {tools}\n"
        )
    return cozy_home


def _ours(home: Path) -> list[psutil.Process]:
    """Live processes started for this test (servers and their children run in `home`)."""
    out = []
    for proc in psutil.process_iter(["cwd", "status", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            if proc.info["cwd"] == str(home) and proc.info["status"] != psutil.STATUS_ZOMBIE:
                out.append(proc)
    return out


def test_hung_server_only_degrades_turns_that_can_use_it(
    fault_home: Path, fake_model: FakeModelServer
) -> None:
    fake_model.queue_reply("hello")
    r = cozy("run", "--json", "-p", "tester", "hi")
    assert r.returncode == 0, r.stderr
    body = json.loads(r.stdout)
    assert body["text"] == "hello" and not body["context"]["degraded"]
    fake_model.queue_reply("still here")
    r = cozy("run", "--json", "-p", "hanger", "hi")
    assert r.returncode == 0, r.stderr
    body = json.loads(r.stdout)
    assert body["text"] == "still here" and body["context"]["degraded"]
    [reason] = [x for x in body["context"]["degrade_reasons"] if "hang" in x]
    assert "did not finish the MCP handshake within 3 s" in reason
    offered = {t["function"]["name"] for t in fake_model.turn_requests()[-1]["tools"]}
    assert "test__add" in offered and not any(n.startswith("hang__") for n in offered)


def test_tools_call_starts_only_its_server_and_failures_are_named(fault_home: Path) -> None:
    r = cozy("tools", "call", "test.add", "a=1", "b=2")
    assert (r.returncode, r.stdout) == (0, "3\n"), r.stderr
    r = cozy("tools", "call", "notmcp.anything")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "notmcp" in r.stderr and "not available" in r.stderr
    assert len(r.stderr.strip().splitlines()) <= 2
    r = cozy("tools", "call", "crash.x")
    assert r.returncode != 0 and "crashing on purpose" in r.stderr
    r = cozy("tools", "list", "--server", "crash")
    assert "warning: tools from 'crash' unavailable" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_no_orphans_after_sigterm_or_sigkill(
    fault_home: Path, fake_model: FakeModelServer, signum: int
) -> None:
    """SIGTERM: cozy kills the servers' process groups itself. SIGKILL: it cannot; each
    server's sandbox launcher learns from the kernel (PR_SET_PDEATHSIG) that cozy died
    and ends its tree (an exec'd server's grandchildren used to live on under PID 1)."""
    fake_model.queue_reply(tool_calls=[("test__sleep", {"seconds": 120})])
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cozy",
            "run",
            "--allow-tools",
            "test.*",
            "--allow-tools",
            "spawn.*",
            "wait",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env=dict(os.environ),
    )
    try:
        deadline = time.monotonic() + 90
        # the spawn server's grandchild (`sleep 600`) and the test server are up
        while not any("sleep" in " ".join(p.info["cmdline"] or []) for p in _ours(fault_home)):
            assert time.monotonic() < deadline and proc.poll() is None, "servers did not start"
            time.sleep(0.1)
        while len(fake_model.turn_requests()) < 1:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(0.5)  # the sleep call is in flight
        proc.send_signal(signum)
        proc.wait(30)
        assert proc.returncode in (-signum, 128 + signum)
        deadline = time.monotonic() + 20
        while _ours(fault_home) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [" ".join(p.info["cmdline"] or []) for p in _ours(fault_home)]
        assert left == [], f"left behind: {left}"
    finally:
        if proc.poll() is None:
            proc.kill()
        for p in _ours(fault_home):
            with contextlib.suppress(psutil.Error):
                p.kill()
