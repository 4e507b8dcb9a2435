"""Deadlines against frozen dependencies (accepted, then silent: a SIGSTOPped process,
a TCP proxy that stops forwarding), the faults `bench/bench_soak.py --freeze` found:

- a probe gives up on time: the work it abandons may take as long again to unwind
- `/ready` (Runtime.readiness) answers within its deadline on a frozen Postgres, not
  one deadline per kind of check
- `tools.timeout` in engines.yaml reaches the tools provider (it was parsed as a
  context engine's timeout and dropped: every call had 30 s)
- a frozen MCP server: each call errors within its timeout (the hung-or-not ping is off
  the caller's clock), health says the server stopped answering, and it recovers both
  when the process resumes and, still frozen, by a restart that kills it
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import write_engines
from mcp_servers.helpers import SERVER, process_gone
from pg_redis_helpers import Proxy, pg_database

from cozy.core.deadline import answer_within
from cozy.core.types import Caller
from cozy.engines.base import ToolContext
from cozy.engines.config import load_engines_config
from cozy.engines.tools.mcp_provider import MCPTools
from cozy.runtime import Runtime
from cozy.runtime.probes import READY_TIMEOUT, readiness
from cozy.settings import Settings
from cozy.testing import FakeModelServer

SLACK = 2.5  # a loaded 2-core box; the bound, not minutes, is what is tested
TIMER_SLACK = 1.5  # an in-process asyncio timer's lateness on such a box
CTX = ToolContext(Caller())


async def test_answer_within_does_not_wait_for_the_abandoned_work() -> None:
    unwound = asyncio.Event()

    async def stubborn() -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            await asyncio.sleep(2)  # a driver closing a socket to a frozen peer
            unwound.set()
            raise
        return "never"

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await answer_within(0.2, stubborn())
    assert time.monotonic() - started < 1.5  # asyncio.wait_for took 2.2 s here
    assert not unwound.is_set()
    await asyncio.wait_for(unwound.wait(), 10)  # and the work did finish unwinding
    assert await answer_within(5, asyncio.sleep(0, result="on time")) == "on time"


@pytest.fixture(scope="module")
def pg() -> Iterator[str]:
    with pg_database() as url:
        yield url


@pytest.mark.postgres
async def test_ready_answers_within_its_deadline_on_a_frozen_postgres(
    pg: str, cozy_home: Path, fake_model: FakeModelServer
) -> None:
    write_engines(
        cozy_home,
        fake_model.url,
        "memory: {provider: local}\nprofile: {provider: local}\n"
        "knowledge: {provider: local}\nembed: {provider: none}\n",
    )
    proxy = Proxy("127.0.0.1", 5432)
    url = pg.replace(":5432/", f":{proxy.port}/")
    settings = Settings(
        home=cozy_home, database_url=url, db_connect_timeout=4, db_statement_timeout=4
    )
    rt = await Runtime.open(settings)
    try:
        assert (await readiness(rt))[0]
        proxy.freeze()
        started = time.monotonic()
        ready, checks = await readiness(rt)
        took = time.monotonic() - started
        assert not ready and not checks["store"]["ok"], checks
        assert took < READY_TIMEOUT + SLACK, took  # was 10 s: store, then the engines
        proxy.thaw()
        deadline = time.monotonic() + 30
        while not (await readiness(rt))[0]:
            assert time.monotonic() < deadline, "not ready again after Postgres came back"
            await asyncio.sleep(0.2)
    finally:
        proxy.close()
        await rt.close()


def test_tools_timeout_reaches_the_provider(tmp_path: Path) -> None:
    path = tmp_path / "engines.yaml"
    path.write_text("tools:\n  provider: mcp\n  timeout: 3\n  servers: {}\n", encoding="utf-8")
    options = load_engines_config([path]).section("tools").options
    assert MCPTools(options).timeout == 3.0
    path.write_text("tools: {provider: builtin}\n", encoding="utf-8")
    assert MCPTools(load_engines_config([path]).section("tools").options).timeout == 30.0


def _stop(pid: int) -> None:
    os.kill(pid, signal.SIGSTOP)


async def _frozen_calls(eng: MCPTools, n: int) -> list[tuple[float, bool, str]]:
    async def one() -> tuple[float, bool, str]:
        started = time.monotonic()
        out = await eng.execute_tool("t.add", {"a": 2, "b": 3}, CTX)
        return time.monotonic() - started, out.is_error, str(out.content)

    return await asyncio.gather(*(one() for _ in range(n)))


async def _running_pid(eng: MCPTools) -> int:
    assert (await eng.execute_tool("t.add", {"a": 2, "b": 3}, CTX)).content == "5"
    pid = (await eng.servers_status())[0]["pid"]
    assert isinstance(pid, int)
    return pid


async def test_frozen_mcp_server_errors_within_the_timeout_and_recovers_on_resume() -> None:
    eng = MCPTools(
        {
            "servers": {"t": {"command": sys.executable, "args": [str(SERVER)]}},
            "timeout": 1,
            "builtin": False,
        }
    )
    try:
        pid = await _running_pid(eng)
        _stop(pid)
        try:
            for took, is_error, text in await _frozen_calls(eng, 3):
                assert is_error and "timed out after 1 s" in text, text
                assert took < 1 + TIMER_SLACK, (
                    took
                )  # was 3 s: the 2 s ping ran on the caller's clock
            health = await eng.health_check()
            assert not health.ok and "stopped answering" in health.detail, health
        finally:
            os.kill(pid, signal.SIGCONT)
        health = await eng.health_check()  # it answers again: healthy, no call needed
        assert health.ok, health
        assert (await eng.execute_tool("t.add", {"a": 2, "b": 3}, CTX)).content == "5"
        assert (await eng.servers_status())[0]["pid"] == pid  # the same process
    finally:
        await eng.close()


async def test_frozen_mcp_server_is_killed_and_restarted_on_next_use() -> None:
    eng = MCPTools(
        {
            "servers": {"t": {"command": sys.executable, "args": [str(SERVER)]}},
            "timeout": 1,
            "builtin": False,
        }
    )
    pid = 0
    try:
        pid = await _running_pid(eng)
        _stop(pid)
        await _frozen_calls(eng, 1)
        assert not (await eng.health_check()).ok  # the ping found it hung
        started = time.monotonic()
        out = await eng.execute_tool("t.add", {"a": 2, "b": 3}, CTX)
        assert out.content == "5" and not out.is_error, out.content
        assert time.monotonic() - started < 20  # a kill, not the SDK's graceful shutdown
        row = (await eng.servers_status())[0]
        assert row["pid"] != pid and row["restarts"] == 1 and row["state"] == "running"
        assert process_gone(pid)  # the stopped process was killed, not left behind
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
        await eng.close()


async def test_a_broken_embedder_shows_as_degraded_memory_in_ready(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    """Every answer is `X-Cozy-Degraded: memory` (keyword search only) when the embed
    config is broken: /ready says so too (it listed nothing)."""
    write_engines(
        cozy_home,
        fake_model.url,
        "memory: {provider: local}\nprofile: {provider: none}\nknowledge: {provider: none}\n"
        f"embed: {{provider: openai, base_url: '{fake_model.url}/v1', api_key: k, bogus: 1}}\n",
    )
    rt = await Runtime.open(Settings(home=cozy_home))
    try:
        ready, checks = await readiness(rt)
        assert ready, checks  # still answers: optional, degraded
        assert not checks["memory"]["ok"] and not checks["memory"]["required"], checks
        assert "embedder unavailable" in checks["memory"]["detail"]
        assert "bogus" in checks["memory"]["detail"]  # the reason names the fix
    finally:
        await rt.close()
