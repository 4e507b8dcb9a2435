"""Long conversations: rolling summaries keep a 300-turn session inside a small window."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import collect, cozy, req, running

from cozy.core.events import ContextBuilt, Done
from cozy.testing import FakeModelServer

# only the model and the store: memory/profile/knowledge jobs would dominate the run time
ONLY_CHAT = "memory: {provider: none}\nprofile: {provider: none}\nknowledge: {provider: none}\n"
SMALL = "  context_windows: {fake-model: 900}\ncontext: {recent_messages: 20}\n" + ONLY_CHAT


@pytest.mark.timeout(400)
async def test_300_turns_stay_in_a_small_window_with_summaries(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    fake_model.add_rule(
        user_contains="Summarize the conversation", text="SUMMARY: the user counts sheep."
    )
    async with running(cozy_home, fake_model.url, SMALL) as rt:
        sid = "new"
        summarised_turns = 0
        requested = 0
        for i in range(300):
            prompt = f"sheep number {i} jumps over the fence, please acknowledge it"
            events = await collect(
                rt.orchestrator.run(req(prompt, session=sid, personality="plain"))
            )
            done = events[-1]
            assert isinstance(done, Done), events[-1]
            sid = done.session_id
            ctx = next(e for e in events if isinstance(e, ContextBuilt)).metadata
            requested += bool(ctx.get("summary_requested"))
            sent = fake_model.turn_requests()[-1]
            assert done.usage["prompt_tokens"] <= 900, (i, done.usage)
            if "SUMMARY: the user counts sheep." in sent["messages"][0]["content"]:
                summarised_turns += 1
                assert "Summary of the earlier conversation" in sent["messages"][0]["content"]
            if i % 25 == 24:
                await rt.drain_jobs()  # what the TUI/server worker does in the background
        assert requested > 0 and summarised_turns > 200
        latest = await rt.summarizer.summaries.latest(sid)
        assert latest is not None and latest.message_count > 400
        # summaries never replace the stored messages
        assert len(await rt.store.list_messages(sid)) == 600
        # only the newest messages are sent next to the summary
        assert len(fake_model.turn_requests()[-1]["messages"]) < 25


async def test_regenerate_keeps_history(cozy_home: Path, fake_model: FakeModelServer) -> None:
    fake_model.add_rule(user_contains="Summarize the conversation", text="first summary")
    async with running(
        cozy_home, fake_model.url, "context: {recent_messages: 4}\n" + ONLY_CHAT
    ) as rt:
        sid = "new"
        for i in range(8):
            events = await collect(rt.orchestrator.run(req(f"fact {i}", session=sid)))
            sid = events[-1].session_id  # type: ignore[attr-defined]
        await rt.drain_jobs()
        first = await rt.summarizer.summaries.latest(sid)
        assert first is not None and first.text == "first summary"
        fake_model.reset()
        fake_model.add_rule(user_contains="Summarize the conversation", text="second summary")
        again = await rt.summarizer.regenerate(sid, None)
        assert again is not None and again.text == "second summary"
        hist = await rt.summarizer.summaries.history(sid)
        assert [h.text for h in hist][-1] == "second summary"
        assert hist[0].superseded_at is not None
        summary_prompt = fake_model.chat_requests()[-1]["messages"][-1]["content"]
        assert "fact 0" in summary_prompt and "Previous summary" not in summary_prompt


def test_sessions_summary_cli(cozy_home: Path, fake_model: FakeModelServer) -> None:
    from helpers import write_engines

    write_engines(cozy_home, fake_model.url, "context: {recent_messages: 4}\n" + ONLY_CHAT)
    fake_model.add_rule(user_contains="Summarize the conversation", text="cli summary")
    for i in range(6):
        assert cozy("run", "-s", "last", f"note {i}", stdin="").returncode == 0
    empty = cozy("sessions", "summary", "last")
    assert empty.returncode == 0 and "no summary yet" in empty.stdout
    assert cozy("jobs", "run").returncode == 0  # a one-shot run left the job pending
    shown = json.loads(cozy("sessions", "summary", "last", "--json").stdout)
    assert shown["text"] == "cli summary" and shown["message_count"] >= 4
    regen = cozy("sessions", "summary", "last", "--regenerate")
    assert regen.returncode == 0 and "cli summary" in regen.stdout
