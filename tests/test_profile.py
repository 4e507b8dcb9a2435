"""profile.local: buffered extraction job, merge with history, summary cache, CLI."""

from __future__ import annotations

import time
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from helpers import collect, req, running, write_engines
from typer.testing import CliRunner

from cozy.core.events import ContextBuilt
from cozy.runtime import Runtime
from cozy.testing import FakeModelServer

YAML = (
    "profile: {provider: local, timeout: 5, min_chars: 60, idle_seconds: 600}\n"
    "memory: {provider: none}\n"
)


def prof_running(home: Path, fake: FakeModelServer) -> AbstractAsyncContextManager[Runtime]:
    """A runtime with the profile engine (YAML), closed when the block ends."""
    return running(home, fake.url, YAML)


async def test_buffered_update_merges_with_history(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    async with prof_running(cozy_home, fake_model) as rt:
        await collect(rt.orchestrator.run(req("hi, I'm Ada")))
        (job,) = await rt.jobs.list()
        assert job.kind == "profile.update" and job.run_after > time.time() + 500  # buffered
        assert await rt.drain_jobs(include_deferred=False) == await rt.drain_jobs(
            include_deferred=False
        )  # nothing due yet
        assert (await rt.jobs.counts())["pending"] == 1
        # enough new text: the same job (one per user) becomes due now
        await collect(
            rt.orchestrator.run(req("I work as a marine biologist in Lisbon, mostly on reefs"))
        )
        (job,) = await rt.jobs.list()
        assert job.run_after <= time.time() and job.payload["chars"] >= 60
        fake_model.add_rule(
            user_contains="New messages from the user",
            json={
                "slots": [
                    {"topic": "basic_info", "slot": "name", "value": "Ada", "confidence": 0.9},
                    {"topic": "work", "slot": "title", "value": "marine biologist"},
                    {"topic": "nonsense_topic", "slot": "x", "value": "dropped"},
                ]
            },
            times=1,
        )
        stats = await rt.drain_jobs(include_deferred=False)
        assert stats.done == 1
        profile = rt.engines["profile"]
        got = await profile.get_profile("local")  # type: ignore[attr-defined]
        assert (
            "basic_info.name: Ada" in got.summary and "work.title: marine biologist" in got.summary
        )
        assert "nonsense" not in got.summary
        # the extraction saw both buffered messages, once
        prompt = next(
            r.body["messages"][1]["content"]
            for r in fake_model.chat_requests()
            if "New messages from the user" in str(r.body)
        )
        assert "I'm Ada" in prompt and "marine biologist" in prompt
        # a later change keeps the old value in the history
        await collect(
            rt.orchestrator.run(req("Actually I switched careers: I'm a data engineer now!"))
        )
        fake_model.add_rule(
            user_contains="New messages from the user",
            json={"slots": [{"topic": "work", "slot": "title", "value": "data engineer"}]},
            times=1,
        )
        await rt.drain_jobs()
        hist = await profile.history("local", "work.title")  # type: ignore[attr-defined]
        assert [(h["action"], h["old_value"], h["new_value"]) for h in hist] == [
            ("add", None, "marine biologist"),
            ("update", "marine biologist", "data engineer"),
        ]
        assert "I'm Ada" not in str(fake_model.chat_requests()[-1].body)  # cursor moved on
        # the profile reaches the prompt and the context metadata
        events = await collect(rt.orchestrator.run(req("what do I do for work?")))
        built = next(e for e in events if isinstance(e, ContextBuilt))
        assert "work.title" in built.metadata["profile_slots"]
        assert "data engineer" in fake_model.turn_requests()[-1]["messages"][0]["content"]


async def test_summary_cache_invalidated_and_budget(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    async with prof_running(cozy_home, fake_model) as rt:
        profile = rt.engines["profile"]
        await profile.set_slot("local", "basic_info.name", "Ada")  # type: ignore[attr-defined]
        assert (await profile.get_profile("local")).summary == "basic_info.name: Ada"  # type: ignore[attr-defined]
        await profile.set_slot("local", "basic_info.name", "Ada Lovelace")  # type: ignore[attr-defined]
        assert "Lovelace" in (await profile.get_profile("local")).summary  # type: ignore[attr-defined]
        for i in range(40):
            await profile.set_slot("local", f"interests.topic_{i}", "x" * 40)  # type: ignore[attr-defined]
        small = await profile.get_profile("local", max_tokens=30)  # type: ignore[attr-defined]
        assert 0 < len(small.slots) < 10 and len(small.summary) // 4 <= 30
        await profile.remove_slot("local", "basic_info.name")  # type: ignore[attr-defined]
        assert "Ada" not in (await profile.get_profile("local")).summary  # type: ignore[attr-defined]
        assert await profile.get_profile("someone_else") is not None  # type: ignore[attr-defined]


def test_cli_profile(cozy_home: Path, fake_model: FakeModelServer) -> None:
    from cozy.cli._common import state
    from cozy.cli.app import app

    state._settings = None  # settings are cached per process: this test has its own home

    write_engines(cozy_home, fake_model.url, YAML)
    runner = CliRunner()
    assert runner.invoke(app, ["profile", "show"]).output.startswith("the profile is empty")
    assert runner.invoke(app, ["profile", "set", "work.title", "pilot"]).exit_code == 0
    assert runner.invoke(app, ["profile", "set", "work.title", "captain"]).exit_code == 0
    shown = runner.invoke(app, ["profile", "show"])
    assert "work.title: captain" in shown.output
    hist = runner.invoke(app, ["profile", "history", "work.title"])
    assert "pilot -> captain" in hist.output
    assert runner.invoke(app, ["profile", "rm", "work.title"]).exit_code == 0
    missing = runner.invoke(app, ["profile", "rm", "work.title"])
    assert missing.exit_code == 2 and "cozy profile show" in missing.output
    bad = runner.invoke(app, ["profile", "set", "no_dot", "x"])
    assert bad.exit_code == 2 and "basic_info.name" in bad.output
