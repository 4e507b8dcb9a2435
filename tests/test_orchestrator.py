"""The five stages end to end against the fake model server, through the real SDKs."""

from __future__ import annotations

import asyncio
import time

import pytest
from helpers import (
    EchoTools,
    SleepyKnowledge,
    SleepyMemory,
    SleepyProfile,
    collect,
    req,
)

from cozy.core.context import ContextService
from cozy.core.events import (
    ContextBuilt,
    Done,
    Failed,
    MessageSaved,
    Started,
    TextDelta,
    ToolApprovalNeeded,
    ToolResult,
)
from cozy.core.personalities import Personality
from cozy.core.toolloop import ToolRunner
from cozy.core.types import Caller, Message
from cozy.runtime import Runtime
from cozy.testing import FakeModelServer


async def test_five_stages_events_and_persistence(fake_model: FakeModelServer, rt: Runtime) -> None:
    events = await collect(rt.orchestrator.run(req("What is 2+2?")))
    kinds = [type(e) for e in events]
    assert kinds[0] is Started and kinds[1] is ContextBuilt
    assert kinds[-2:] == [MessageSaved, Done]
    done = events[-1]
    assert isinstance(done, Done)
    assert done.text == "".join(e.text for e in events if isinstance(e, TextDelta))
    assert "2+2" in done.text and done.status == "complete"
    assert set(done.timings) >= {"prepare", "context", "tools", "generate", "persist", "total"}
    assert done.usage["completion_tokens"] > 0
    rows = await rt.store.list_messages(done.session_id)
    assert [(r.role, r.status) for r in rows] == [
        ("user", "complete"),
        ("assistant", "complete"),
    ]
    assert rows[1].content == done.text and rows[1].metadata["model"] == "ollama:fake-model"
    # the next turn in the same session sends the history to the model
    await collect(rt.orchestrator.run(req("and 3+3?", session=done.session_id)))
    sent = fake_model.turn_requests()[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[1]["content"] == "What is 2+2?"


async def test_openai_provider_through_orchestrator(
    fake_model: FakeModelServer, rt: Runtime
) -> None:
    events = await collect(rt.orchestrator.run(req("hello", model="openai:gpt-test")))
    done = events[-1]
    assert isinstance(done, Done) and done.model == "openai:gpt-test"
    assert fake_model.turn_requests()[-1].path == "/v1/chat/completions"


def _personality(**kw: object) -> Personality:
    return Personality.model_validate({"id": "t", "name": "T", "system_prompt": "be kind", **kw})


async def test_context_engines_run_in_parallel() -> None:
    svc = ContextService(
        # sleeps long enough that a loaded machine's scheduling delays stay small beside them
        knowledge=SleepyKnowledge(1.5),
        profile=SleepyProfile(1.0),
        memory=SleepyMemory(1.25),
        timeouts={"knowledge": 10, "profile": 10, "memory": 10},
    )
    started = time.perf_counter()
    bundle = await svc.build(
        query="wifi",
        user_id="u",
        personality=_personality(),
        history=[],
        user_message=Message("user", "wifi"),
        token_budget=4000,
    )
    elapsed = time.perf_counter() - started
    assert elapsed < 2.5, f"took {elapsed:.2f}s; the longest sleep is 1.5s, their sum 3.75s"
    meta = bundle.metadata
    assert meta["degraded"] is False and sorted(meta["enabled_engines"]) == [
        "knowledge",
        "memory",
        "profile",
    ]
    assert meta["engines"]["knowledge"]["latency_ms"] >= 1490
    assert bundle.retrieved_knowledge and bundle.retrieved_memories and bundle.user_profile
    system = bundle.prompt_messages(Message("user", "wifi"))[0].content
    assert "green tea" in system and "notes/wifi.md#rotation" in system and "Ada" in system


async def test_failing_and_hanging_engines_degrade() -> None:
    svc = ContextService(
        knowledge=SleepyKnowledge(fail=True),
        profile=SleepyProfile(60.0),
        memory=SleepyMemory(0.01),
        timeouts={"profile": 0.1},
    )
    started = time.perf_counter()
    bundle = await svc.build(
        query="q",
        user_id="u",
        personality=_personality(),
        history=[],
        user_message=Message("user", "q"),
        token_budget=4000,
    )
    assert time.perf_counter() - started < 10  # cut at the timeout, not waited out (60 s)
    meta = bundle.metadata
    assert meta["degraded"] is True
    reasons = " | ".join(meta["degrade_reasons"])
    assert "knowledge: RuntimeError: index is broken" in reasons
    assert "profile: timed out after 0.1s" in reasons
    assert meta["engines"]["profile"]["degraded"] and not meta["engines"]["memory"]["degraded"]
    assert bundle.retrieved_memories and not bundle.user_profile


async def test_degraded_turn_still_answers(fake_model: FakeModelServer, rt: Runtime) -> None:
    rt.orchestrator.context = ContextService(
        memory=SleepyMemory(fail=True), knowledge=SleepyKnowledge(0.01)
    )
    events = await collect(rt.orchestrator.run(req("hello")))
    ctx = next(e for e in events if isinstance(e, ContextBuilt))
    assert ctx.metadata["degraded"] and "memory" in ctx.metadata["degrade_reasons"][0]
    assert isinstance(events[-1], Done) and events[-1].text
    system = fake_model.turn_requests()[-1]["messages"][0]["content"]
    assert "wifi password" in system


async def test_user_a_memories_never_reach_user_b(fake_model: FakeModelServer, rt: Runtime) -> None:
    rt.orchestrator.context = ContextService(
        memory=SleepyMemory(per_user={"alice": "alice's secret is 42", "bob": "bob likes jazz"})
    )
    await collect(rt.orchestrator.run(req("hi", caller=Caller(user_id="bob"))))
    system = fake_model.turn_requests()[-1]["messages"][0]["content"]
    assert "jazz" in system and "42" not in system
    # and bob cannot open alice's session
    a = await collect(rt.orchestrator.run(req("hi", caller=Caller(user_id="alice"))))
    sid = a[-1].session_id  # type: ignore[attr-defined]
    b = await collect(rt.orchestrator.run(req("x", session=sid, caller=Caller(user_id="bob"))))
    assert isinstance(b[-1], Failed) and b[-1].error["code"] == "not_found"


async def test_cancel_persists_partial_answer_as_interrupted(
    fake_model: FakeModelServer, rt: Runtime
) -> None:
    fake_model.tokens_per_second = 20
    fake_model.queue_reply(" ".join(f"word{i}" for i in range(200)))
    seen: list[str] = []
    session: list[str] = []
    five = asyncio.Event()

    async def consume() -> None:
        async for e in rt.orchestrator.run(req("tell me a long story")):
            if isinstance(e, Started):
                session.append(e.session_id)
            if isinstance(e, TextDelta):
                seen.append(e.text)
                if len(seen) >= 5:
                    five.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(five.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    rows = await rt.store.list_messages(session[0])
    assert [r.role for r in rows] == ["user", "assistant"]
    assert rows[1].status == "interrupted"
    assert rows[1].content.startswith("".join(seen)) and len(rows[1].content) > 0
    assert "word199" not in rows[1].content


async def test_model_error_is_reported_and_user_message_kept(
    fake_model: FakeModelServer, rt: Runtime
) -> None:
    fake_model.fail_next(500, times=5)
    events = await collect(rt.orchestrator.run(req("hello?")))
    failed = events[-1]
    assert isinstance(failed, Failed) and failed.session_id
    rows = await rt.store.list_messages(failed.session_id)
    assert rows[0].content == "hello?" and rows[-1].status == "failed"
    assert "500" in rows[-1].metadata["error"] or "error" in rows[-1].metadata["error"]


async def test_tool_loop_read_only_write_approval_and_errors(
    fake_model: FakeModelServer, rt: Runtime
) -> None:
    tools = EchoTools()
    rt.orchestrator.tools = ToolRunner(tools, audit=rt.store)
    rt.personalities.all()["assistant"].tools = ["test.*"]
    asked: list[str] = []

    async def deny_writes(call, spec, ctx):  # type: ignore[no-untyped-def]
        asked.append(spec.name)
        return "deny"

    fake_model.queue_reply(
        tool_calls=[("test__echo", {"text": "a"}), ("test__boom", {"text": "b"})]
    )
    fake_model.queue_reply(tool_calls=[("test__write", {"text": "c", "api_key": "sk-123"})])
    fake_model.queue_reply("all done")
    events = await collect(rt.orchestrator.run(req("use tools", approver=deny_writes)))
    results = [e for e in events if isinstance(e, ToolResult)]
    assert [(r.name, r.is_error) for r in results] == [
        ("test.echo", False),
        ("test.boom", True),
        ("test.write", True),
    ]
    assert results[0].content == "test.echo:a" and "kaboom" in results[1].content
    assert results[2].decision == "deny" and "denied" in results[2].content
    assert any(isinstance(e, ToolApprovalNeeded) for e in events)
    assert asked == ["test.write"]
    assert [c[0] for c in tools.calls] == ["test.echo", "test.boom"]  # write never ran
    done = events[-1]
    assert isinstance(done, Done) and done.text == "all done"
    # the model saw the tool results in the follow-up request
    last = fake_model.turn_requests()[-1]["messages"]
    assert [m["role"] for m in last[-3:]] == ["tool", "assistant", "tool"]
    audit = await rt.store.list_audit()
    assert {a["tool"]: a["status"] for a in audit} == {
        "test.echo": "ok",
        "test.boom": "error",
        "test.write": "denied",
    }
    rows = await rt.store.list_messages(done.session_id)
    assert [r.role for r in rows] == [
        "user",
        "assistant",
        "tool",
        "tool",
        "assistant",
        "tool",
        "assistant",
    ]


async def test_tool_loop_stops_at_the_round_cap(fake_model: FakeModelServer, rt: Runtime) -> None:
    rt.orchestrator.tools = ToolRunner(EchoTools(), audit=rt.store)
    rt.personalities.all()["assistant"].tools = ["test.*"]
    fake_model.add_rule(tool_offered="test__echo", tool_calls=[("test__echo", {"text": "again"})])
    events = await collect(rt.orchestrator.run(req("loop forever", max_tool_rounds=3)))
    assert sum(isinstance(e, ToolResult) for e in events) == 3
    assert isinstance(events[-1], Done)
    assert not fake_model.turn_requests()[-1].get("tools")  # last round offers none


async def test_empty_prompt_and_over_budget(fake_model: FakeModelServer, rt: Runtime) -> None:
    events = await collect(rt.orchestrator.run(req("   ")))
    assert isinstance(events[-1], Failed) and events[-1].error["code"] == "invalid_request"
    huge = "word " * 200_000
    events = await collect(rt.orchestrator.run(req(huge)))
    failed = events[-1]
    assert isinstance(failed, Failed) and failed.error["code"] == "context_length_exceeded"
    assert "context_windows" in failed.error["message"]
    # refused before anything is written: no session, no 1 MB message
    assert failed.session_id is None and failed.message_id is None
    assert await rt.store.list_sessions("local") == []
    assert fake_model.chat_requests() == []
