"""The builtin tools provider."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from cozy.core.errors import ToolError
from cozy.core.types import Caller, ToolOutput, ToolSpec
from cozy.engines.base import ToolContext
from cozy.engines.registry import registry
from cozy.engines.tools.builtin import (
    BuiltinTools,
    declared_builtins,
    register_builtin,
    unregister_builtin,
)
from cozy.engines.tools.mcp_provider import MCPTools

CTX = ToolContext(caller=Caller(user_id="u1"), session_id="s1")


@pytest.fixture
def declared() -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:
        unregister_builtin(name)


def test_registered_by_entry_point() -> None:
    assert registry.get("tools", "builtin") is BuiltinTools


async def test_now_local_and_timezone() -> None:
    eng = BuiltinTools()
    [spec] = await eng.list_tools()
    assert spec.name == "builtin.now" and spec.level == "read-only" and spec.server == "builtin"
    out = await eng.execute_tool("builtin.now", {}, CTX)
    data = json.loads(out.content)
    assert not out.is_error
    assert (
        abs(
            (datetime.fromisoformat(data["datetime"]) - datetime.now().astimezone()).total_seconds()
        )
        < 5
    )
    tokyo = json.loads(
        (await eng.execute_tool("builtin.now", {"timezone": "Asia/Tokyo"}, CTX)).content
    )
    assert tokyo["timezone"] == "Asia/Tokyo" and tokyo["utc_offset"] == "+0900"


async def test_now_bad_input() -> None:
    eng = BuiltinTools()
    out = await eng.execute_tool("builtin.now", {"timezone": "Mars/Olympus"}, CTX)
    assert out.is_error and "IANA" in out.content
    out = await eng.execute_tool("builtin.now", {"tz": "UTC"}, CTX)
    assert out.is_error and "Additional properties are not allowed" in out.content
    out = await eng.execute_tool("builtin.nope", {}, CTX)
    assert out.is_error and "builtin.now" in out.content


async def test_register_declared_and_instance(declared: list[str]) -> None:
    seen: list[Any] = []

    async def remember(args: dict[str, Any], ctx: ToolContext) -> str:
        seen.append((args, ctx.caller.user_id, ctx.session_id))
        return f"remembered {args['text']}"

    spec = ToolSpec(
        name="memory.remember",
        description="Remember a fact",
        parameters={
            "type": "object",
            "properties": {"text": {"type": "string"}},
            "required": ["text"],
        },
        level="write",
    )
    register_builtin(spec, remember)
    declared.append(spec.name)
    assert "memory.remember" in declared_builtins()
    with pytest.raises(ToolError):
        register_builtin(spec, remember)
    eng = BuiltinTools()
    assert {t.name for t in await eng.list_tools()} == {"builtin.now", "memory.remember"}
    out = await eng.execute_tool("memory.remember", {"text": "tea"}, CTX)
    assert out.content == "remembered tea" and seen == [({"text": "tea"}, "u1", "s1")]
    bad = await eng.execute_tool("memory.remember", {}, CTX)
    assert bad.is_error and "'text' is a required property" in bad.content

    async def search(args: dict[str, Any], ctx: ToolContext) -> list[dict[str, str]]:
        return [{"id": "k1", "text": "hit"}]

    eng.register(ToolSpec(name="knowledge.search", level="read-only"), search)
    out = await eng.execute_tool("knowledge.search", {}, CTX)
    assert json.loads(out.content) == [{"id": "k1", "text": "hit"}]
    assert "knowledge.search" not in {t.name for t in await BuiltinTools().list_tools()}
    assert "builtin.now" not in {
        t.name for t in await BuiltinTools({"disabled": ["builtin.now"]}).list_tools()
    }


async def test_errors_timeouts_and_caps() -> None:
    eng = BuiltinTools({"timeout": 0.2, "max_output_chars": 50})

    async def boom(args: dict[str, Any], ctx: ToolContext) -> str:
        raise RuntimeError("kaput")

    async def slow(args: dict[str, Any], ctx: ToolContext) -> str:
        await asyncio.sleep(10)
        return "never"

    async def big(args: dict[str, Any], ctx: ToolContext) -> ToolOutput:
        return ToolOutput("y" * 500)

    for name, fn in (("t.boom", boom), ("t.slow", slow), ("t.big", big)):
        eng.register(ToolSpec(name=name), fn)
    out = await eng.execute_tool("t.boom", {}, CTX)
    assert out.is_error and "RuntimeError: kaput" in out.content
    out = await eng.execute_tool("t.slow", {}, CTX)
    assert out.is_error and "timed out" in out.content
    out = await eng.execute_tool("t.big", {}, CTX)
    assert out.truncated and out.content.startswith("y" * 50) and "of 500 characters" in out.content


async def test_mcp_provider_exposes_builtins_without_servers() -> None:
    eng = MCPTools({"servers": {}})

    async def hello(args: dict[str, Any], ctx: ToolContext) -> str:
        return "hi"

    eng.register_builtin(ToolSpec(name="memory.hello", level="read-only"), hello)
    names = {t.name for t in await eng.list_tools()}
    assert names == {"builtin.now", "memory.hello"}
    assert (await eng.execute_tool("memory.hello", {}, CTX)).content == "hi"
    rows = await eng.servers_status()
    assert rows == [
        {
            "name": "builtin",
            "transport": "builtin",
            "target": "",
            "state": "running",
            "pid": None,
            "tool_count": 2,
            "last_error": None,
            "start_ms": None,
            "restarts": 0,
        }
    ]
    await eng.close()
