"""What third-party servers send and receive besides calls, against the npm reference
server (server-everything, installed by ./install.sh --dev): cancellation of an
abandoned call, an npx server's process tree dying with a SIGKILLed cozy, log
messages kept bounded and shown by `cozy tools logs`, and resource subscriptions."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
from helpers import write_engines
from mcp_servers.helpers import eventually
from npm_servers import npm_server, npx_server
from tools_cli import cozy

from cozy.core.types import Caller
from cozy.engines.base import EngineContext, ToolContext
from cozy.engines.tools.mcp_logs import LEVELS, MAX_ENTRIES, MAX_FILE_BYTES, ServerLog, read_logs
from cozy.engines.tools.mcp_provider import MCPTools
from cozy.settings import Settings

TAP = Path(__file__).parent / "mcp_servers" / "tap.py"
DOC = "demo://resource/static/document/architecture.md"


def tapped(server: dict[str, Any], log: Path) -> dict[str, Any]:
    """The same server behind tap.py, which logs the JSON-RPC lines both ways."""
    return {
        "command": sys.executable,
        "args": [str(TAP), str(log), server["command"], *server["args"]],
    }


def wire(log: Path) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for line in log.read_text(encoding="utf-8").splitlines():
        direction, _, body = line.partition(" ")
        out.append((direction, json.loads(body)))
    return out


async def test_a_cancelled_call_is_cancelled_on_server_everything(tmp_path: Path) -> None:
    """server-everything's long-running operation ignores the abort, but its SDK then
    drops the response: after a cancel the result never arrives, the session goes on."""
    log = tmp_path / "wire.log"
    eng = MCPTools(
        {"servers": {"ev": tapped(npm_server("everything", "stdio"), log)}, "builtin": False}
    )
    try:
        steps: list[Any] = []
        ctx = ToolContext(Caller(), extra={"on_progress": lambda *a: steps.append(a)})
        args = {"duration": 3, "steps": 3}
        task = asyncio.create_task(eng.execute_tool("ev.trigger-long-running-operation", args, ctx))
        assert await eventually(lambda: len(steps) >= 1, 60)  # the operation is under way
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        else:
            raise AssertionError("the call finished instead of being cancelled")
        [(_, call)] = [(d, m) for d, m in wire(log) if d == ">" and m.get("method") == "tools/call"]

        def cancels() -> list[Any]:
            return [
                m["params"]["requestId"]
                for d, m in wire(log)
                if d == ">" and m.get("method") == "notifications/cancelled"
            ]

        assert await eventually(lambda: cancels() != [], 20)
        assert cancels() == [call["id"]]
        # the operation would have finished by now; its response was dropped
        await asyncio.sleep(4)
        out = await eng.execute_tool("ev.echo", {"message": "still here"}, ctx)
        assert "still here" in out.content and not out.is_error
        answers = [m for d, m in wire(log) if d == "<" and m.get("id") == call["id"]]
        assert answers == [], answers
        row = next(r for r in await eng.servers_status() if r["name"] == "ev")
        assert (row["restarts"], row["state"]) == (0, "running")
    finally:
        await eng.close()


def _ours(home: Path) -> list[psutil.Process]:
    """Live processes started for this test (the server runs in `home`)."""
    out = []
    for proc in psutil.process_iter(["cwd", "status"]):
        with contextlib.suppress(psutil.Error):
            if proc.info["cwd"] == str(home) and proc.info["status"] != psutil.STATUS_ZOMBIE:
                out.append(proc)
    return out


def test_an_npx_servers_node_process_dies_with_a_sigkilled_cozy(cozy_home: Path) -> None:
    """SIGKILL leaves cozy no chance to clean up: the sandbox launcher, told by the
    kernel that cozy died, ends the whole tree, npx's node child included."""
    server = {**npx_server("everything", "stdio"), "cwd": str(cozy_home)}
    write_engines(
        cozy_home,
        "http://127.0.0.1:9",
        f"tools:\n  provider: mcp\n  servers:\n    ev: {json.dumps(server)}\n",
    )
    args = ["tools", "call", "ev.trigger-long-running-operation", "duration=600", "steps=1"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "cozy", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        # npx (npm exec) and the node server it starts, both under the launcher
        # (npm exec -> sh -c -> node .bin/mcp-server-everything)
        while not any(
            ".bin/mcp-server-everything" in " ".join(p.cmdline()) for p in _ours(cozy_home)
        ):
            assert time.monotonic() < deadline and proc.poll() is None, "the server did not start"
            time.sleep(0.1)
        tree = [p.pid for p in _ours(cozy_home)]
        assert len(tree) >= 4, [" ".join(p.cmdline()) for p in _ours(cozy_home)]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 20
        while _ours(cozy_home) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [" ".join(p.cmdline()) for p in _ours(cozy_home)]
        assert left == [], f"left behind: {left}"
    finally:
        if proc.poll() is None:
            proc.kill()
        for p in _ours(cozy_home):
            with contextlib.suppress(psutil.Error):
                p.kill()


def _home_ctx(home: Path) -> EngineContext:
    return EngineContext(settings=Settings(home=home))


async def test_server_everything_logs_are_kept_bounded_and_readable(tmp_path: Path) -> None:
    log = tmp_path / "wire.log"
    server = {**tapped(npm_server("everything", "stdio"), log), "log_level": "debug"}
    eng = MCPTools({"servers": {"ev": server}, "builtin": False}, _home_ctx(tmp_path))
    try:
        await eng.list_tools()
        levels = [m["params"] for d, m in wire(log) if m.get("method") == "logging/setLevel"]
        assert levels == [{"level": "debug"}]
        got: list[dict[str, Any]] = []
        ctx = ToolContext(Caller(), extra={"on_log": got.append})
        out = await eng.execute_tool("ev.toggle-simulated-logging", {}, ctx)
        assert "Started simulated" in out.content, out.content
        assert await eventually(lambda: eng.server_logs("ev") != [], 30)
        [first, *_] = eng.server_logs("ev")
        # ("Info-level message", "Alert level-message", ...: one at random)
        assert first["server"] == "ev" and re.search(r"level.message", first["text"])
        assert first["level"] in LEVELS
        # the file copy is what `cozy tools logs` reads in a later process
        assert (tmp_path / "logs" / "mcp" / "ev.jsonl").is_file()
        await eng.execute_tool("ev.toggle-simulated-logging", {}, ctx)  # stop it
    finally:
        await eng.close()


def test_a_flooding_logger_stays_bounded(tmp_path: Path) -> None:
    ring = ServerLog("flood", tmp_path)
    for i in range(5000):
        ring.add("info", None, f"message {i} " + "x" * 300)
    ring.add("error", "big", "y" * 50_000)
    assert len(ring.entries) == MAX_ENTRIES and ring.total == 5001
    assert ring.entries[-1].text.endswith("[cut: 50000 characters]")
    assert (tmp_path / "flood.jsonl").stat().st_size <= MAX_FILE_BYTES
    rows = read_logs(tmp_path, ["flood"], limit=3, level="info")
    assert [r["text"][:12] for r in rows[:2]] == ["message 4998", "message 4999"]
    assert read_logs(tmp_path, ["flood"], level="error")[0]["logger"] == "big"


async def test_subscribed_resources_are_cached_until_server_everything_updates_them(
    tmp_path: Path,
) -> None:
    log = tmp_path / "wire.log"
    eng = MCPTools(
        {"servers": {"ev": tapped(npm_server("everything", "stdio"), log)}, "builtin": False}
    )

    def sent(method: str) -> list[Any]:
        return [m["params"]["uri"] for d, m in wire(log) if d == ">" and m.get("method") == method]

    try:
        first = await eng.read_resource("ev", DOC)
        again = await eng.read_resource("ev", DOC)
        assert again.text == first.text
        assert sent("resources/read") == [DOC]  # the second read came from the cache
        assert sent("resources/subscribe") == [DOC]
        # the server now sends notifications/resources/updated for what we subscribed to
        await eng.execute_tool("ev.toggle-subscriber-updates", {}, ToolContext(Caller()))
        assert await eventually(lambda: eng.resource_updates("ev") != [], 30)
        assert eng.resource_updates("ev")[0][1] == DOC
        await eng.read_resource("ev", DOC)
        assert sent("resources/read") == [DOC, DOC]  # the update dropped the cached copy
        await eng.execute_tool("ev.toggle-subscriber-updates", {}, ToolContext(Caller()))
    finally:
        await eng.close()


def test_cli_tools_logs(cozy_home: Path) -> None:
    server = {**npm_server("everything", "stdio"), "cwd": str(cozy_home), "log_level": "debug"}
    server["levels"] = {"toggle-simulated-logging": "read-only"}
    write_engines(
        cozy_home,
        "http://127.0.0.1:9",
        f"tools:\n  provider: mcp\n  servers:\n    ev: {json.dumps(server)}\n",
    )
    r = cozy("tools", "logs", "ev")
    assert r.returncode == 0 and "no log messages from 'ev' yet" in r.stderr, r.stderr
    r = cozy("tools", "call", "ev.toggle-simulated-logging")
    assert r.returncode == 0 and "Started simulated" in r.stdout, r.stderr
    r = cozy("tools", "logs", "ev", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert rows and all(row["server"] == "ev" for row in rows)
    r = cozy("tools", "logs", "ev")
    assert re.search(r"level.message", r.stdout)
    r = cozy("tools", "logs", "--level", "loud")
    assert r.returncode != 0 and "use one of: debug, info" in r.stderr


async def test_time_spent_on_a_servers_form_is_not_the_calls_timeout() -> None:
    """A person answering an elicitation can take longer than the call's timeout: the
    clock stops while they answer and restarts with what was left."""
    eng = MCPTools(
        {"servers": {"ev": npm_server("everything", "stdio")}, "builtin": False, "timeout": 3}
    )

    async def slow_person(server: str, message: str, schema: dict[str, Any]) -> Any:
        await asyncio.sleep(5)
        return "accept", {"name": "Ada"}

    try:
        await eng.list_tools()
        ctx = ToolContext(Caller(), extra={"elicit": slow_person})
        out = await eng.execute_tool("ev.trigger-elicitation-request", {}, ctx)
        assert not out.is_error and "Ada" in out.content, out.content
        # the clock still runs outside the form
        out = await eng.execute_tool("ev.trigger-long-running-operation", {"duration": 8}, ctx)
        assert out.is_error and "timed out after 3 s" in out.content
    finally:
        await eng.close()
