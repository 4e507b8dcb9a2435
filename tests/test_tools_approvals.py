"""Approvals, remembered grants and face policies through the orchestrator's approver,
against the real test MCP server (whose note counter proves what really ran)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import collect, req
from tools_loop_helpers import (
    Approver,
    results,
    runtime,
    tester_profile,  # noqa: F401 - autouse: profiles + no leftover servers
    tools_running,
)

from cozy.core.events import ToolApprovalNeeded
from cozy.core.types import Caller, ToolCall
from cozy.engines.base import ToolContext
from cozy.storage.store import Store
from cozy.storage.tool_grants import ToolGrants
from cozy.testing import FakeModelServer


async def test_approve_once_and_deny(cozy_home: Path, fake_model: FakeModelServer) -> None:
    async with tools_running(cozy_home, fake_model) as rt:
        approver = Approver("deny", "once")
        fake_model.queue_reply(tool_calls=[("test__write_note", {"text": "first"})])
        fake_model.queue_reply("ok")
        fake_model.queue_reply(tool_calls=[("test__write_note", {"text": "second"})])
        fake_model.queue_reply("ok")
        first = await collect(
            rt.orchestrator.run(req("note", personality="tester", approver=approver))
        )
        [denied] = results(first)
        assert denied.decision == "deny" and denied.is_error and "denied" in denied.content
        assert any(isinstance(e, ToolApprovalNeeded) for e in first)
        second = await collect(
            rt.orchestrator.run(req("note", personality="tester", approver=approver))
        )
        [ran] = results(second)
        # the server's note counter proves the denied call never reached it
        assert (ran.decision, ran.content) == ("once", "stored note #1")
        assert approver.asked == ["test.write_note", "test.write_note"]
        assert await ToolGrants(rt.store).list_grants("local") == []  # "once" is not remembered


async def test_always_is_remembered_by_a_new_runtime(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    rt = await runtime(cozy_home, fake_model)
    fake_model.add_rule(
        user_contains="note", tool_calls=[("test__write_note", {"text": "x"})], times=None
    )
    try:
        approver = Approver("always")
        events = await collect(
            rt.orchestrator.run(req("note", personality="tester", approver=approver))
        )
        assert results(events)[0].decision == "always" and approver.asked == ["test.write_note"]
    finally:
        await rt.close()
    async with tools_running(cozy_home, fake_model) as rt:  # a new process, as far as cozy can tell
        approver = Approver()
        events = await collect(
            rt.orchestrator.run(req("note", personality="tester", approver=approver))
        )
        [res] = results(events)
        assert (res.decision, res.is_error) == ("always", False) and approver.asked == []
        assert not any(isinstance(e, ToolApprovalNeeded) for e in events)
        # another personality is not covered by the grant
        other = Approver("deny")
        events = await collect(
            rt.orchestrator.run(req("note", personality="other", approver=other))
        )
        assert results(events)[0].decision == "deny" and other.asked == ["test.write_note"]
        # revoked: asked again
        assert await ToolGrants(rt.store).revoke("local", tool="test.write_note") == 1
        again = Approver("deny")
        events = await collect(
            rt.orchestrator.run(req("note", personality="tester", approver=again))
        )
        assert results(events)[0].decision == "deny" and again.asked == ["test.write_note"]


async def test_dangerous_tool_never_runs_without_approval(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    async with tools_running(cozy_home, fake_model) as rt:
        yes = Approver("once", "once")
        fake_model.queue_reply(tool_calls=[("test__write_note", {"text": "keep me"})])
        fake_model.queue_reply("ok")
        fake_model.queue_reply(tool_calls=[("test__delete_all", {})])
        fake_model.queue_reply("ok")
        fake_model.queue_reply(tool_calls=[("test__write_note", {"text": "again"})])
        fake_model.queue_reply("ok")
        await collect(rt.orchestrator.run(req("a", personality="tester", approver=yes)))
        # no approver at all (a script without --yes): dangerous is denied
        events = await collect(rt.orchestrator.run(req("b", personality="tester")))
        [res] = results(events)
        assert res.decision == "deny" and res.is_error
        events = await collect(rt.orchestrator.run(req("c", personality="tester", approver=yes)))
        assert results(events)[0].content == "stored note #2"  # delete_all never ran
        audit = [a for a in await rt.store.list_audit() if a["tool"] == "test.delete_all"]
        assert [(a["level"], a["status"]) for a in audit] == [("dangerous", "denied")]


async def test_server_face_denies_dangerous_by_default(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    async with tools_running(cozy_home, fake_model) as rt:
        http = Caller(user_id="api-user", role="user", face="server")
        approver = Approver("once", "once")
        fake_model.queue_reply(
            tool_calls=[("test__delete_all", {}), ("test__write_note", {"text": "w"})]
        )
        fake_model.queue_reply("done")
        events = await collect(
            rt.orchestrator.run(req("x", personality="tester", caller=http, approver=approver))
        )
        offered = {t["function"]["name"] for t in fake_model.chat_requests()[0]["tools"]}
        assert "test__write_note" in offered and "test__delete_all" not in offered
        assert "test__crash" not in offered and "test__unannotated" not in offered  # dangerous
        dangerous, write = results(events)  # the model called it anyway: refused, never run
        assert dangerous.is_error and "unknown tool" in dangerous.content
        assert (write.decision, write.is_error) == ("once", False)  # write still asks
        assert approver.asked == ["test.write_note"]
        # the run stage applies the policy itself too (defence in depth), and audits it
        runner = rt.orchestrator.tools
        specs = {s.name: s for s in await runner.engine.list_tools()}  # type: ignore[union-attr]
        ctx = ToolContext(http, None, "tester", "req-x")
        out: list[Any] = []
        call = ToolCall("c1", "test.delete_all", "{}")
        events = [e async for e in runner.run([call], specs, ctx, approver, out)]
        [res] = results(events)
        assert res.decision == "policy-deny" and "tools.server_policy" in res.content
        assert approver.asked == ["test.write_note"]  # never asked
        row = next(a for a in await rt.store.list_audit() if a["tool"] == "test.delete_all")
        assert (row["user_id"], row["decision"], row["status"]) == (
            "api-user",
            "policy-deny",
            "denied",
        )
        # the CLI face is not restricted: dangerous tools are offered (and asked for)
        cli = await runner.available(rt.personalities.get("tester"), Caller())
        assert "test.delete_all" in {s.name for s in cli}


async def test_server_policy_is_configurable(cozy_home: Path, fake_model: FakeModelServer) -> None:
    policy = "  server_policy: {dangerous: ask, write: deny, network: allow}\n"
    async with tools_running(cozy_home, fake_model, extra=policy) as rt:
        http = Caller(user_id="api-user", role="user", face="server")
        approver = Approver("once")
        fake_model.queue_reply(
            tool_calls=[
                ("test__delete_all", {}),
                ("test__write_note", {"text": "w"}),
                ("test__fetch", {"url": "http://x"}),
            ]
        )
        events = await collect(
            rt.orchestrator.run(req("x", personality="tester", caller=http, approver=approver))
        )
        dangerous, write, fetch = results(events)
        assert (dangerous.decision, dangerous.content) == ("once", "deleted")
        assert write.is_error and "unknown tool" in write.content  # write: not even offered
        offered = {t["function"]["name"] for t in fake_model.chat_requests()[0]["tools"]}
        assert "test__write_note" not in offered and "test__delete_all" in offered
        assert (fetch.decision, fetch.content) == ("policy-allow", "fetched http://x")
        assert approver.asked == ["test.delete_all"]


async def test_bad_server_policy_names_the_file(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    from cozy.core.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        await runtime(cozy_home, fake_model, extra="  server_policy: {dangerous: maybe}\n")
    assert "server_policy" in str(err.value) and "engines.yaml:" in str(err.value)


async def test_grant_store_on_sqlite_and_postgres(db_url: str) -> None:
    store = await Store.open(db_url)
    try:
        grants = ToolGrants(store)
        assert await grants.add_grant("u1", "tester", "fs.write_file") is True
        assert await grants.add_grant("u1", "tester", "fs.write_file") is False  # idempotent
        await grants.add_grant("u1", "coder", "fs.write_file")
        await grants.add_grant("u2", "tester", "fs.delete")
        assert await grants.is_granted("u1", "tester", "fs.write_file")
        assert not await grants.is_granted("u2", "tester", "fs.write_file")
        assert [(g.personality_id, g.tool) for g in await grants.list_grants("u1")] == [
            ("coder", "fs.write_file"),
            ("tester", "fs.write_file"),
        ]
        assert await grants.revoke("u1", tool="fs.write_file", personality_id="coder") == 1
        assert await grants.revoke("u1", tool="nope") == 0
        assert await grants.revoke("u2") == 1
        assert [g.tool for g in await grants.list_grants("u1")] == ["fs.write_file"]
    finally:
        await store.close()
