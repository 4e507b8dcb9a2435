"""The tool loop end to end: the fake model calls tools of a REAL MCP server.

The orchestrator, the mcp provider, the store (audit) and the test MCP server
(stdio and streamable HTTP) all run for real; only the model is faked.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import SleepyKnowledge, collect, req, running
from mcp_servers.helpers import http_server
from tools_loop_helpers import (
    Approver,
    done,
    results,
    runtime,
    tester_profile,  # noqa: F401 - autouse: profiles + no leftover servers
    tools_running,
    tools_yaml,
)

from cozy.core.events import ChatEvent, ToolCallRequested, ToolResult
from cozy.core.toolloop import args_digest
from cozy.core.types import Caller, ToolOutput, ToolSpec
from cozy.engines.base import ToolContext
from cozy.testing import FakeModelServer


async def test_single_call_over_stdio(cozy_home: Path, fake_model: FakeModelServer) -> None:
    async with tools_running(cozy_home, fake_model) as rt:
        fake_model.queue_reply(tool_calls=[("test__add", {"a": 2, "b": 40})])
        fake_model.queue_reply("it is 42")
        events = await collect(rt.orchestrator.run(req("add 2 and 40", personality="tester")))
        [res] = results(events)
        assert (res.name, res.content, res.is_error, res.decision) == (
            "test.add",
            "42",
            False,
            "auto",
        )
        assert done(events).text == "it is 42"
        offered = {t["function"]["name"] for t in fake_model.chat_requests()[0]["tools"]}
        assert {"test__add", "test__delete_all", "builtin__now"} <= offered
        follow_up = fake_model.turn_requests()[-1]["messages"]
        assert follow_up[-1]["role"] == "tool" and follow_up[-1]["content"] == "42"
        [row] = await rt.store.list_audit()
        assert (row["tool"], row["level"], row["decision"], row["status"]) == (
            "test.add",
            "read-only",
            "auto",
            "ok",
        )
        assert row["args_digest"] == args_digest({"a": 2, "b": 40}) and row["output_size"] == 2


async def test_parallel_read_only_calls_run_concurrently(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    async with tools_running(cozy_home, fake_model) as rt:
        # long sleeps so the overlap shows through a loaded machine's scheduling delays
        fake_model.queue_reply(tool_calls=[("test__sleep", {"seconds": 1.5})] * 3)
        fake_model.queue_reply("rested")
        asked_at = done_at = 0.0
        events: list[ChatEvent] = []
        async for event in rt.orchestrator.run(req("sleep thrice", personality="tester")):
            events.append(event)
            if isinstance(event, ToolCallRequested):
                asked_at = time.perf_counter()
            if isinstance(event, ToolResult) and not done_at:
                done_at = time.perf_counter()
        res = results(events)
        assert [r.content for r in res] == ["slept"] * 3
        serial = sum(r.duration_ms for r in res) / 1000
        wall = done_at - asked_at
        # three 1.5 s sleeps overlapped: the round took about one of them, not their sum
        assert wall < serial * 0.7, (wall, serial)
        assert done(events).text == "rested"


async def test_parallel_calls_meet_at_a_barrier(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    """Deterministic proof: two read-only calls that only finish together."""
    async with tools_running(cozy_home, fake_model) as rt:
        barrier = asyncio.Barrier(2)

        async def meet(args: dict[str, Any], ctx: ToolContext) -> ToolOutput:
            try:
                await asyncio.wait_for(barrier.wait(), 5)
            except TimeoutError:
                return ToolOutput("alone: the calls ran one after the other", is_error=True)
            return ToolOutput(f"met {args['who']}")

        spec = ToolSpec(
            "builtin.meet",
            "wait for a friend",
            {"type": "object", "properties": {"who": {"type": "string"}}, "required": ["who"]},
            "read-only",
        )
        engine = rt.orchestrator.tools.engine
        engine.register_builtin(spec, meet)  # type: ignore[union-attr]
        fake_model.queue_reply(
            tool_calls=[("builtin__meet", {"who": "a"}), ("builtin__meet", {"who": "b"})]
        )
        events = await collect(rt.orchestrator.run(req("meet", personality="tester")))
        assert [(r.content, r.is_error) for r in results(events)] == [
            ("met a", False),
            ("met b", False),
        ]


async def test_chained_calls_feed_results_forward(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    async with tools_running(cozy_home, fake_model) as rt:
        fake_model.queue_reply(tool_calls=[("test__add", {"a": 2, "b": 3})])
        fake_model.queue_reply(tool_calls=[("test__add", {"a": 5, "b": 10})])
        events = await collect(rt.orchestrator.run(req("2+3, then +10", personality="tester")))
        assert [r.content for r in results(events)] == ["5", "15"]
        assert done(events).text == "The tool returned: 15"
        second = fake_model.chat_requests()[1]["messages"]
        assert second[-1] == {**second[-1], "role": "tool", "content": "5"}
        rows = await rt.store.list_messages(done(events).session_id)
        roles = ["user", "assistant", "tool", "assistant", "tool", "assistant"]
        assert [r.role for r in rows] == roles


async def test_bad_calls_go_back_to_the_model(cozy_home: Path, fake_model: FakeModelServer) -> None:
    async with tools_running(cozy_home, fake_model) as rt:
        fake_model.queue_reply(
            tool_calls=[
                ("test__add", {"a": "two", "b": 3}),  # schema violation (MCP tool)
                ("builtin__now", {"timezone": 5}),  # schema violation (builtin tool)
                ("test__nope", {}),  # unknown tool
                ("test__big", {"size": 50_000}),  # huge output is capped
            ]
        )
        fake_model.queue_reply("sorry, let me fix that")
        events = await collect(rt.orchestrator.run(req("break things", personality="tester")))
        add, now, nope, big = results(events)
        assert add.is_error and "invalid arguments for test.add" in add.content
        assert "'two' is not of type 'integer'" in add.content and "a*, b*" in add.content
        assert now.is_error and "timezone" in now.content and "not of type 'string'" in now.content
        assert nope.is_error and "unknown tool" in nope.content and "test.add" in nope.content
        assert not big.is_error and "[output truncated" in big.content
        assert len(big.content) < 50_000
        assert done(events).text == "sorry, let me fix that"
        sent = [m for m in fake_model.turn_requests()[-1]["messages"] if m["role"] == "tool"]
        assert len(sent) == 4 and "invalid arguments" in sent[0]["content"]
        audit = {(a["tool"], a["status"]) for a in await rt.store.list_audit()}
        assert {("test.add", "invalid"), ("builtin.now", "invalid"), ("test.big", "ok")} <= audit


async def test_configured_round_cap(cozy_home: Path, fake_model: FakeModelServer) -> None:
    async with tools_running(cozy_home, fake_model, extra="  max_rounds: 2\n") as rt:
        assert rt.orchestrator.tools.max_rounds == 2
        fake_model.add_rule(tool_offered="test__add", tool_calls=[("test__add", {"a": 1, "b": 1})])
        events = await collect(rt.orchestrator.run(req("loop", personality="tester")))
        assert [r.content for r in results(events)] == ["2", "2"]
        assert not fake_model.turn_requests()[-1].get("tools")  # the last round offers none
        assert done(events).status == "complete"


async def test_round_cap_above_ten_is_a_config_error(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    from cozy.core.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        await runtime(cozy_home, fake_model, extra="  max_rounds: 50\n")
    assert "engines.yaml:" in str(err.value) and "max_rounds" in str(err.value)


async def test_server_crash_mid_call_degrades_but_answers(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    async with tools_running(cozy_home, fake_model) as rt:
        fake_model.queue_reply(tool_calls=[("test__crash", {})])
        fake_model.queue_reply("the tool broke, but here is my answer")
        fake_model.queue_reply(tool_calls=[("test__add", {"a": 1, "b": 2})])
        events = await collect(
            rt.orchestrator.run(req("crash it", personality="tester", approver=Approver("once")))
        )
        [res] = results(events)
        assert res.is_error and "test.crash" in res.content
        final = done(events)
        assert final.status == "complete" and final.text == "the tool broke, but here is my answer"
        # the next turn reconnects to a fresh server
        events = await collect(rt.orchestrator.run(req("add", personality="tester")))
        assert results(events)[0].content == "3"
        assert done(events).text == "The tool returned: 3"


async def test_streamable_http_server(cozy_home: Path, fake_model: FakeModelServer) -> None:
    with http_server() as port:
        servers = f"    web: {{url: 'http://127.0.0.1:{port}/mcp'}}\n"
        async with tools_running(cozy_home, fake_model, servers=servers) as rt:
            fake_model.queue_reply(
                tool_calls=[("web__add", {"a": 20, "b": 22}), ("web__sleep", {"seconds": 0.1})]
            )
            fake_model.queue_reply(tool_calls=[("web__write_note", {"text": "via http"})])
            fake_model.queue_reply("done over http")
            events = await collect(
                rt.orchestrator.run(req("http", personality="tester", approver=Approver("once")))
            )
            assert [(r.name, r.content) for r in results(events)] == [
                ("web.add", "42"),
                ("web.sleep", "slept"),
                ("web.write_note", "stored note #1"),
            ]
            assert done(events).text == "done over http"


async def test_audit_digest_redacts_secrets(cozy_home: Path, fake_model: FakeModelServer) -> None:
    async with tools_running(cozy_home, fake_model) as rt:
        seen: list[dict[str, Any]] = []

        async def login(args: dict[str, Any], ctx: ToolContext) -> str:
            seen.append(args)
            return "logged in"

        spec = ToolSpec(
            "builtin.login",
            "log in",
            {
                "type": "object",
                "properties": {"user": {"type": "string"}, "api_token": {"type": "string"}},
                "required": ["user", "api_token"],
            },
            "read-only",
        )
        rt.orchestrator.tools.engine.register_builtin(spec, login)  # type: ignore[union-attr]
        fake_model.queue_reply(
            tool_calls=[("builtin__login", {"user": "ada", "api_token": "sk-SECRET"})]
        )
        await collect(rt.orchestrator.run(req("log in", personality="tester")))
        assert seen == [{"user": "ada", "api_token": "sk-SECRET"}]  # the tool got the real value
        [row] = await rt.store.list_audit()
        assert "sk-SECRET" not in json.dumps(row, default=str)
        # the digest does not depend on the secret, only on the redacted arguments
        assert row["args_digest"] == args_digest({"user": "ada", "api_token": "other"})
        assert row["args_digest"] != args_digest({"user": "bob", "api_token": "sk-SECRET"})
        assert row["session_id"] and row["personality_id"] == "tester"


async def test_memory_tools_over_the_local_memory_engine(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    """memory.remember / memory.search / memory.forget, registered by the runtime."""
    memory = "memory: {provider: local, embeddings: false}\n"
    async with running(cozy_home, fake_model.url, tools_yaml() + memory) as rt:
        specs = {s.name: s for s in await rt.orchestrator.tools.engine.list_tools()}  # type: ignore[union-attr]
        assert specs["memory.remember"].level == "write"
        assert specs["memory.search"].level == "read-only"
        assert specs["memory.forget"].level == "write"
        fake_model.queue_reply(
            tool_calls=[("memory__remember", {"text": "The user's cat is called Miso."})]
        )
        fake_model.queue_reply("noted")
        fake_model.queue_reply(tool_calls=[("memory__search", {"query": "cat Miso"})])
        fake_model.queue_reply("found it")
        events = await collect(
            rt.orchestrator.run(req("remember my cat", approver=Approver("once")))
        )
        [saved] = results(events)
        assert saved.decision == "once" and not saved.is_error, saved.content
        memory_id = json.loads(saved.content)["id"]
        events = await collect(rt.orchestrator.run(req("what is my cat called?")))
        [found] = results(events)
        assert found.decision == "auto" and "Miso" in found.content and memory_id in found.content
        fake_model.queue_reply(tool_calls=[("memory__forget", {"memory_id": memory_id})])
        fake_model.queue_reply(tool_calls=[("memory__forget", {"memory_id": "mem_nope"})])
        events = await collect(
            rt.orchestrator.run(req("forget the cat", approver=Approver("once", "once")))
        )
        forgot, missing = results(events)
        assert not forgot.is_error and memory_id in forgot.content
        assert missing.is_error and "memory.search" in missing.content
        hits = await rt.engines["memory"].search_memories("cat Miso", user_id="local")  # type: ignore[attr-defined]
        assert all(h.id != memory_id for h in hits)


async def test_generic_knowledge_search_tool() -> None:
    """knowledge.search over any KnowledgeEngine (the local one brings its own)."""
    from cozy.engines.tools.builtin import BuiltinTools
    from cozy.engines.tools.engine_tools import engine_tools

    tools = BuiltinTools()
    for spec, fn in engine_tools(knowledge=SleepyKnowledge()):
        tools.register(spec, fn)
    ctx = ToolContext(Caller())
    out = await tools.execute_tool("knowledge.search", {"query": "wifi"}, ctx)
    [hit] = json.loads(out.content)
    assert hit["citation"] == "notes/wifi.md#rotation" and "wifi" in hit["text"]
    bad = await tools.execute_tool("knowledge.search", {"query": ""}, ctx)
    assert bad.is_error and "query" in bad.content
