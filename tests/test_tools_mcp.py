"""The mcp tools provider against real MCP servers (stdio, streamable HTTP, SSE)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp_servers.helpers import (
    CLOSE_BOUND,
    SERVER,
    eventually,
    free_port,
    http_server,
    live_children,
    process_gone,
)

from cozy.core.errors import ConfigError
from cozy.core.types import Caller
from cozy.engines.base import ToolContext
from cozy.engines.registry import registry
from cozy.engines.tools.mcp_provider import MCPTools, import_claude_config

CTX = ToolContext(caller=Caller())


def stdio(**extra: Any) -> dict[str, Any]:
    return {"command": sys.executable, "args": [str(SERVER)], **extra}


@pytest.fixture
async def engine() -> AsyncIterator[MCPTools]:
    eng = MCPTools({"servers": {"t": stdio(levels={"fetch": "write"})}, "timeout": 5})
    yield eng
    await eng.close()


async def wait_pid(eng: MCPTools, name: str, limit: float = 20) -> int:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        pid = status_of(await eng.servers_status(), name)["pid"]
        if pid:
            return int(pid)
        await asyncio.sleep(0.05)
    raise AssertionError(f"server {name} did not start")


def status_of(rows: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(r for r in rows if r["name"] == name)


async def test_registered_by_entry_point() -> None:
    assert registry.get("tools", "mcp") is MCPTools


async def test_list_tools_levels_and_overrides(engine: MCPTools) -> None:
    tools = {t.name: t for t in await engine.list_tools()}
    assert "builtin.now" in tools
    levels = {name: t.level for name, t in tools.items()}
    assert levels["t.add"] == "read-only"
    assert levels["t.write_note"] == "write"
    assert levels["t.delete_all"] == "dangerous"
    assert levels["t.unannotated"] == "dangerous"
    assert levels["t.fetch"] == "write"  # openWorld -> network, overridden in config
    add = tools["t.add"]
    assert add.server == "t" and add.wire_name == "t__add"
    assert add.parameters["required"] == ["a", "b"]
    assert add.to_openai()["function"]["name"] == "t__add"


async def test_glob_override_and_no_builtin() -> None:
    eng = MCPTools({"servers": {"t": stdio(levels={"*": "network"})}, "builtin": False})
    try:
        tools = await eng.list_tools()
        assert tools and all(t.level == "network" for t in tools)
        assert not any(t.server == "builtin" for t in tools)
    finally:
        await eng.close()


async def test_call_over_stdio(engine: MCPTools) -> None:
    out = await engine.execute_tool("t.add", {"a": 2, "b": 40}, CTX)
    assert (out.content, out.is_error, out.truncated) == ("42", False, False)
    assert out.duration_ms > 0
    plain = await engine.execute_tool("t.plain", {}, CTX)
    assert plain.content == "this is {not json: at all" and not plain.is_error
    pic = await engine.execute_tool("t.picture", {}, CTX)
    assert pic.content == "a tiny picture\n[image 1: image/png, 108 bytes]"
    [image] = pic.media
    assert (image.kind, image.mime, image.size) == ("image", "image/png", 108)
    # a wire name that slipped through still resolves
    assert (await engine.execute_tool("t__add", {"a": 1, "b": 1}, CTX)).content == "2"


async def test_call_over_streamable_http() -> None:
    with http_server() as port:
        eng = MCPTools({"servers": {"web": {"url": f"http://127.0.0.1:{port}/mcp"}}})
        try:
            names = {t.name for t in await eng.list_tools()}
            assert "web.add" in names
            out = await eng.execute_tool("web.add", {"a": 1, "b": 2}, CTX)
            assert out.content == "3" and not out.is_error
            row = status_of(await eng.servers_status(), "web")
            assert row["state"] == "running" and row["transport"] == "streamable-http"
            assert row["tool_count"] == len(names) - 1
        finally:
            await eng.close()


async def test_call_over_sse() -> None:
    with http_server("--sse") as port:
        cfg = {"url": f"http://127.0.0.1:{port}/sse", "transport": "sse"}
        eng = MCPTools({"servers": {"old": cfg}})
        try:
            out = await eng.execute_tool("old.add", {"a": 5, "b": 5}, CTX)
            assert out.content == "10"
        finally:
            await eng.close()


async def test_mcp_server_time_from_pypi() -> None:
    eng = MCPTools(
        {"servers": {"time": {"command": sys.executable, "args": ["-m", "mcp_server_time"]}}}
    )
    try:
        names = {t.name for t in await eng.list_tools()}
        assert "time.get_current_time" in names
        out = await eng.execute_tool("time.get_current_time", {"timezone": "UTC"}, CTX)
        assert not out.is_error, out.content
        assert json.loads(out.content)["timezone"] == "UTC"
    finally:
        await eng.close()


async def test_timeout_cancels_hanging_call() -> None:
    eng = MCPTools({"servers": {"t": stdio()}, "timeout": 1})
    try:
        await eng.list_tools()  # start the server first: only the call is timed
        start = time.perf_counter()
        out = await eng.execute_tool("t.sleep", {"seconds": 60}, CTX)
        assert out.is_error and "timed out after 1 s" in out.content
        assert time.perf_counter() - start < 30  # the call was cut, not waited out (60 s)
        # the server stays usable
        assert (await eng.execute_tool("t.add", {"a": 1, "b": 1}, CTX)).content == "2"
    finally:
        await eng.close()


async def test_crash_mid_call_reported_then_reconnects(engine: MCPTools) -> None:
    await engine.list_tools()
    first_pid = status_of(await engine.servers_status(), "t")["pid"]
    out = await engine.execute_tool("t.crash", {}, CTX)
    assert out.is_error
    assert "exited with status 3" in out.content and "restarted on next use" in out.content
    assert "crash tool: exiting now" in out.content  # its stderr
    row = status_of(await engine.servers_status(), "t")
    assert row["state"] == "failed" and "exited with status 3" in row["last_error"]
    assert process_gone(first_pid)
    again = await engine.execute_tool("t.add", {"a": 2, "b": 3}, CTX)
    assert again.content == "5" and not again.is_error
    row = status_of(await engine.servers_status(), "t")
    assert row["state"] == "running" and row["restarts"] == 1 and row["pid"] != first_pid


async def test_a_cancelled_call_is_cancelled_on_the_server(
    engine: MCPTools, tmp_path: Path
) -> None:
    """Cancelling the caller (Ctrl-C, Esc) sends notifications/cancelled: the server's
    handler is cancelled (it records that), and the same session keeps answering."""
    await engine.list_tools()
    pid = await wait_pid(engine, "t")
    marker = tmp_path / "marker"
    args = {"seconds": 120, "marker": str(marker)}
    task = asyncio.create_task(engine.execute_tool("t.wait", args, CTX))
    assert await eventually(lambda: marker.exists() and "started" in marker.read_text())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await eventually(lambda: "cancelled" in marker.read_text()), marker.read_text()
    out = await engine.execute_tool("t.add", {"a": 2, "b": 3}, CTX)
    assert (out.content, out.is_error) == ("5", False)
    row = status_of(await engine.servers_status(), "t")
    assert (row["pid"], row["restarts"], row["state"]) == (pid, 0, "running")


async def test_cpu_limit_kill_is_named_and_the_server_restarts() -> None:
    eng = MCPTools({"servers": {"t": stdio(limits={"cpu_seconds": 1})}, "timeout": 120})
    try:
        await eng.list_tools()
        first_pid = await wait_pid(eng, "t")
        out = await eng.execute_tool("t.spin", {"seconds": 30}, CTX)
        assert out.is_error, out.content
        assert "killed for exceeding its CPU limit" in out.content, out.content
        assert "limit 1 s" in out.content and "servers.t.limits.cpu_seconds" in out.content
        assert "restarted on next use" in out.content
        row = status_of(await eng.servers_status(), "t")
        assert row["state"] == "failed" and "CPU limit" in row["last_error"]
        again = await eng.execute_tool("t.add", {"a": 2, "b": 3}, CTX)
        assert (again.content, again.is_error) == ("5", False)
        row = status_of(await eng.servers_status(), "t")
        assert row["restarts"] == 1 and row["pid"] != first_pid
        assert "CPU limit" in row["last_error"]  # the reason of the last restart stays
    finally:
        await eng.close()


async def test_failed_servers_reported_others_listed(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    eng = MCPTools(
        {
            "servers": {
                "t": stdio(),
                "badcmd": {"command": "cozy-no-such-command-xyz"},
                "badcwd": stdio(cwd=str(tmp_path / "missing")),
                "nocmd": {"args": ["x"]},
                "dead": {"url": f"http://127.0.0.1:{port}/mcp"},
                "exits": {"command": sys.executable, "args": ["-c", "import sys; sys.exit(2)"]},
            },
            "startup_timeout": 30,
        }
    )
    try:
        start = time.perf_counter()
        names = {t.name for t in await eng.list_tools()}
        assert time.perf_counter() - start < 35  # no failure holds the list up past the limit
        assert "t.add" in names
        rows = {r["name"]: r for r in await eng.servers_status()}
        assert rows["t"]["state"] == "running" and rows["t"]["pid"]
        for bad in ("badcmd", "badcwd", "nocmd", "dead", "exits"):
            assert rows[bad]["state"] == "failed", rows[bad]
            assert rows[bad]["last_error"]
        assert "not found on PATH" in rows["badcmd"]["last_error"]
        assert "does not exist" in rows["badcwd"]["last_error"]
        assert "needs `command`" in rows["nocmd"]["last_error"]
        out = await eng.execute_tool("badcmd.anything", {}, CTX)
        assert out.is_error and "not found on PATH" in out.content
        health = await eng.health_check()
        assert not health.ok and "badcmd" in health.detail
    finally:
        await eng.close()


async def test_invalid_arguments_go_back_to_the_model(engine: MCPTools) -> None:
    out = await engine.execute_tool("t.add", {"a": "one"}, CTX)
    assert out.is_error
    assert "'b' is a required property" in out.content
    assert "'one' is not of type 'integer'" in out.content
    assert "expected fields: a*, b*" in out.content


async def test_unknown_tools(engine: MCPTools) -> None:
    out = await engine.execute_tool("nosuch.tool", {}, CTX)
    assert out.is_error and "configured servers: t" in out.content
    out = await engine.execute_tool("t.nosuch", {}, CTX)
    assert out.is_error and "t.add" in out.content


async def test_huge_output_truncated() -> None:
    eng = MCPTools({"servers": {"t": stdio()}, "max_output_chars": 1000})
    try:
        out = await eng.execute_tool("t.big", {"size": 50_000}, CTX)
        assert out.truncated and not out.is_error
        assert out.content.startswith("x" * 1000)
        assert "[output truncated: showing 1000 of 50000 characters]" in out.content
    finally:
        await eng.close()


async def test_clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("COZY_SECRET_TOKEN", "leak-me")
    monkeypatch.setenv("COZY_PASSED", "ok-passed")
    cfg = stdio(env={"FROM_CONFIG": "set"}, env_passthrough=["COZY_PASSED"], cwd=str(tmp_path))
    eng = MCPTools({"servers": {"t": cfg}, "limits": {"cpu_seconds": 120, "memory_mb": 4096}})
    try:

        async def env(name: str) -> str:
            return (await eng.execute_tool("t.env", {"name": name}, CTX)).content

        assert await env("COZY_SECRET_TOKEN") == "<unset>"
        assert await env("COZY_HOME") == "<unset>"
        assert await env("FROM_CONFIG") == "set"
        assert await env("COZY_PASSED") == "ok-passed"
        assert await env("PATH") != "<unset>"
        who = (await eng.execute_tool("t.whoami", {}, CTX)).content
        assert f"cwd={tmp_path}" in who
        assert "cpu=120" in who and f"as={4096 * 1024 * 1024}" in who
        row = status_of(await eng.servers_status(), "t")
        assert f"pid={row['pid']}" in who
    finally:
        await eng.close()


async def test_schema_cache_and_refresh(engine: MCPTools) -> None:
    first = await engine.list_tools()
    conn = engine._conns["t"]
    cached = conn.cached_tools()
    assert cached is not None
    await engine.list_tools()
    assert conn.cached_tools() is cached  # no new tools/list within the TTL
    await engine.execute_tool("t.crash", {}, CTX)
    await engine.execute_tool("t.add", {"a": 1, "b": 1}, CTX)  # restart refetches
    assert conn.cached_tools() is not cached
    assert {t.name for t in await engine.list_tools()} == {t.name for t in first}


async def test_list_changed_notification_refreshes_schemas(engine: MCPTools) -> None:
    assert "t.extra" not in {t.name for t in await engine.list_tools()}
    assert (await engine.execute_tool("t.grow", {}, CTX)).content == "grown"
    # the list_changed notification arrives on its own: wait for it to drop the cache
    assert await eventually(lambda: engine._conns["t"].cached_tools() is None)
    assert "t.extra" in {t.name for t in await engine.list_tools()}
    assert (await engine.execute_tool("t.extra", {}, CTX)).content == "extra!"


async def test_no_leftover_processes_after_close() -> None:
    eng = MCPTools({"servers": {"a": stdio(), "b": stdio()}})
    await eng.list_tools()
    pids = [r["pid"] for r in await eng.servers_status() if r["pid"]]
    assert len(pids) == 2
    start = time.perf_counter()
    await eng.close()
    assert time.perf_counter() - start < CLOSE_BOUND
    assert all(process_gone(p) for p in pids)
    assert live_children() == []
    await eng.close()  # safe twice


async def test_close_is_bounded_when_server_hangs() -> None:
    eng = MCPTools({"servers": {"t": stdio()}, "timeout": 30})
    await eng.list_tools()
    pid = status_of(await eng.servers_status(), "t")["pid"]
    call = asyncio.create_task(eng.execute_tool("t.block", {"seconds": 120}, CTX))
    await asyncio.sleep(0.5)
    start = time.perf_counter()
    await eng.close()
    assert time.perf_counter() - start < CLOSE_BOUND
    assert process_gone(pid)
    out = await asyncio.wait_for(call, 30)
    assert out.is_error
    assert live_children() == []


async def test_cancelled_caller_leaves_no_process() -> None:
    eng = MCPTools({"servers": {"t": stdio()}})
    call = asyncio.create_task(eng.execute_tool("t.sleep", {"seconds": 120}, CTX))
    pid = await wait_pid(eng, "t")
    await asyncio.sleep(0.3)  # call in flight
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    # server still serves after a cancelled call
    assert (await eng.execute_tool("t.add", {"a": 1, "b": 2}, CTX)).content == "3"
    closing = asyncio.create_task(eng.close())
    await asyncio.sleep(0.05)
    closing.cancel()  # the closer itself is cancelled half-way
    with pytest.raises(asyncio.CancelledError):
        await closing
    # the shielded close goes on in the background: wait for it, however slow the machine
    assert await eventually(lambda: process_gone(pid))
    assert await eventually(lambda: live_children() == []), live_children()


async def test_cancel_during_lazy_start_then_close() -> None:
    eng = MCPTools({"servers": {"t": stdio()}})
    task = asyncio.create_task(eng.list_tools())
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await eng.close()
    assert await eventually(lambda: live_children() == []), live_children()


def test_import_claude_config(tmp_path: Path) -> None:
    cfg = {
        "mcpServers": {
            "filesystem": {
                "command": "npx",
                "args": ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"],
                "env": {"A": "b"},
            },
            "remote api": {
                "type": "http",
                "url": "http://localhost:9000/mcp",
                "headers": {"X": "1"},
            },
        }
    }
    path = tmp_path / "claude_desktop_config.json"
    path.write_text(json.dumps(cfg))
    servers = import_claude_config(path)
    assert servers["filesystem"]["command"] == "npx"
    assert servers["filesystem"]["env"] == {"A": "b"}
    assert servers["remote_api"] == {
        "url": "http://localhost:9000/mcp",
        "headers": {"X": "1"},
        "transport": "streamable-http",
    }
    MCPTools({"servers": servers})  # the result is a valid servers mapping
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="invalid JSON"):
        import_claude_config(path)
    with pytest.raises(ConfigError, match="no such file"):
        import_claude_config(tmp_path / "nope.json")


def test_bad_servers_section() -> None:
    with pytest.raises(ConfigError):
        MCPTools({"servers": ["not", "a", "mapping"]})
    eng = MCPTools({"servers": {"x": {"command": "y", "levels": {"t": "scary"}}}})
    row = eng._conns["x"].status
    assert row.state == "failed" and "'scary' is not one of" in (row.last_error or "")


def test_server_dies_with_a_crashed_cozy() -> None:
    """cozy killed hard (no close, no atexit): the sandbox's PR_SET_PDEATHSIG ends the server."""
    import subprocess

    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux-only")
    script = f"""
import asyncio, os, sys
from cozy.engines.tools.mcp_provider import MCPTools
async def main():
    eng = MCPTools({{"servers": {{"t": {{"command": sys.executable, "args": [{str(SERVER)!r}]}}}}}})
    await eng.list_tools()
    print((await eng.servers_status())[1]["pid"], flush=True)
    os._exit(1)
asyncio.run(main())
"""
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    pid = int(proc.stdout.strip())
    deadline = time.monotonic() + 30
    while not process_gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process_gone(pid)
