"""profile.memobase: the official memobase client against a protocol fake of the
Memobase server's `/api/v1` API (tests/memobase_fake.py; the real server cannot run
here). Any network attempt to a non-loopback address fails the test."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import collect, open_runtime, req, running
from memobase_fake import MemobaseFake
from net_guard import loopback_only

from cozy.core.errors import AuthError, EngineError, MissingExtraError
from cozy.core.events import ContextBuilt, Done
from cozy.core.types import Message
from cozy.engines.profile.memobase_provider import MemobaseProfile, memobase_user_id
from cozy.runtime import Runtime
from cozy.testing import FakeModelServer

pytest.importorskip("memobase", reason="needs the memobase extra: ./install.sh --extras memobase")


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    with loopback_only(monkeypatch, lookups=False) as attempts:
        yield attempts


@pytest.fixture
def memobase() -> Iterator[MemobaseFake]:
    fake = MemobaseFake(api_key="mb-key").start()

    def extract(messages: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
        text = " ".join(m["content"] for m in messages if m["role"] == "user")
        out = []
        if "Ada" in text:
            out.append(("basic_info", "name", "Ada"))
        if "Lyon" in text:
            out.append(("basic_info", "location", "lives in Lyon"))
        if "violin" in text:
            out.append(("interests", "music", "plays the violin"))
        return out

    fake.extract = extract
    yield fake
    fake.stop()


def _yaml(fake: MemobaseFake, **extra: Any) -> str:
    opts = ", ".join(f"{k}: {v}" for k, v in extra.items())
    return (
        f"profile: {{provider: memobase, url: '{fake.url}', api_key: mb-key, timeout: 5"
        + (f", {opts}" if opts else "")
        + "}\n"
        # only the profile engine under test: a slow local embedder on a busy machine
        # would add its own (correct) degrade reason to the turn
        + "memory: {provider: none}\nknowledge: {provider: none}\n"
    )


async def _engine(rt: Runtime) -> MemobaseProfile:
    engine = rt.engines["profile"]
    assert isinstance(engine, MemobaseProfile)
    return engine


async def test_update_then_get_profile_maps_topics(
    cozy_home: Path, fake_model: FakeModelServer, memobase: MemobaseFake
) -> None:
    async with running(cozy_home, fake_model.url, _yaml(memobase)) as rt:
        prof = await _engine(rt)
        assert (await prof.health_check()).ok
        assert (await prof.get_profile("ada")).slots == []  # unknown user: empty, no error
        await prof.update_profile(
            "ada",
            [Message("user", "Hi, I'm Ada and I live in Lyon."), Message("assistant", "Hi Ada!")],
            source_ids=["m1", "m2"],
        )
        # the cozy user became one Memobase user with a stable UUID
        assert list(memobase.users) == [memobase_user_id("ada")]
        (blob,) = memobase.users[memobase_user_id("ada")].blobs.values()
        assert blob["blob_data"]["messages"][0]["content"].startswith("Hi, I'm Ada")
        assert blob["fields"] == {"source_ids": "m1,m2"}
        profile = await prof.get_profile("ada")
        slots = {(s.topic, s.slot): s.value for s in profile.slots}
        assert slots == {("basic_info", "name"): "Ada", ("basic_info", "location"): "lives in Lyon"}
        assert "basic_info.name: Ada" in profile.summary
        assert all(s.updated_at for s in profile.slots)
        # another cozy user is another Memobase user
        assert (await prof.get_profile("bob")).slots == []


async def test_write_back_and_cache(
    cozy_home: Path, fake_model: FakeModelServer, memobase: MemobaseFake
) -> None:
    async with running(cozy_home, fake_model.url, _yaml(memobase)) as rt:
        prof = await _engine(rt)
        await prof.set_slot("ada", "work", "title", "engineer")
        assert [(s.slot, s.value) for s in (await prof.get_profile("ada")).slots] == [
            ("title", "engineer")
        ]
        reads = len(memobase.paths("GET"))
        await prof.get_profile("ada")  # served from the cache
        assert len(memobase.paths("GET")) == reads
        await prof.set_slot("ada", "work", "title", "staff engineer")  # update, not a copy
        assert [s.value for s in (await prof.get_profile("ada")).slots] == ["staff engineer"]
        await prof.delete_slot("ada", "work", "title")
        assert (await prof.get_profile("ada")).slots == []


async def test_chat_turns_buffer_then_flush_on_min_chars(
    cozy_home: Path, fake_model: FakeModelServer, memobase: MemobaseFake
) -> None:
    async with running(cozy_home, fake_model.url, _yaml(memobase, min_chars=50)) as rt:
        events = await collect(rt.orchestrator.run(req("I'm Ada.")))
        assert isinstance(events[-1], Done)
        stats = await rt.drain_jobs(include_deferred=False)
        assert stats.failed == 0, stats.errors
        user = memobase.users[memobase_user_id("local")]
        assert len(user.buffer) == 1 and memobase.flushes == 0  # 8 chars: kept in the buffer
        await collect(rt.orchestrator.run(req("I moved to Lyon last year and I play the violin.")))
        stats = await rt.drain_jobs(include_deferred=False)
        assert memobase.flushes == 1 and user.buffer == []  # 8 + 49 chars >= 50: flushed now
        # the next chat gets the profile in its context and prompt
        events = await collect(rt.orchestrator.run(req("What do you know about me?")))
        ctx = next(e for e in events if isinstance(e, ContextBuilt))
        assert not ctx.metadata["degraded"], ctx.metadata["degrade_reasons"]
        assert set(ctx.metadata["profile_slots"]) == {
            "basic_info.name",
            "basic_info.location",
            "interests.music",
        }
        assert "plays the violin" in str(fake_model.turn_requests()[-1]["messages"])


async def test_idle_flush_and_no_double_insert(
    cozy_home: Path, fake_model: FakeModelServer, memobase: MemobaseFake
) -> None:
    async with running(cozy_home, fake_model.url, _yaml(memobase, idle_seconds=3600)) as rt:
        events = await collect(rt.orchestrator.run(req("I'm Ada.")))
        done = events[-1]
        assert isinstance(done, Done)
        await rt.drain_jobs(include_deferred=False)
        assert memobase.flushes == 0
        # a re-run of the same turn job (at-least-once delivery) inserts nothing twice
        prof = await _engine(rt)
        payload = {"session_id": done.session_id, "message_id": done.message_id}
        await prof.background().turn(payload, None)
        user = memobase.users[memobase_user_id("local")]
        assert len(user.blobs) == 1
        # the idle rule: the deferred flush job runs once the user has been quiet
        stats = await rt.drain_jobs(include_deferred=True)
        assert stats.failed == 0 and memobase.flushes == 1


async def test_failures_degrade_the_chat_never_fail_it(
    cozy_home: Path, fake_model: FakeModelServer, memobase: MemobaseFake
) -> None:
    async with running(cozy_home, fake_model.url, _yaml(memobase)) as rt:
        memobase.fail_next(500)
        events = await collect(rt.orchestrator.run(req("hello")))
        ctx = next(e for e in events if isinstance(e, ContextBuilt))
        assert ctx.metadata["degraded"]
        assert "memobase read profile failed: HTTP 500" in " ".join(ctx.metadata["degrade_reasons"])
        assert isinstance(events[-1], Done) and events[-1].status == "complete"
        prof = await _engine(rt)
        memobase.stop()  # the server goes away
        health = await prof.health_check()
        assert not health.ok and "unreachable" in health.detail and "profile.url" in health.fix
        with pytest.raises(EngineError):
            await prof.get_profile("someone-new")


async def test_wrong_key_and_missing_key(
    cozy_home: Path, fake_model: FakeModelServer, memobase: MemobaseFake
) -> None:
    yaml = _yaml(memobase).replace("api_key: mb-key", "api_key: wrong")
    rt = await open_runtime(cozy_home, fake_model.url, yaml)
    try:
        prof = await _engine(rt)
        with pytest.raises(AuthError) as info:
            await prof.get_profile("ada")
        assert "MEMOBASE_API_KEY" in str(info.value)
        assert not (await prof.health_check()).ok
    finally:
        await rt.close()
    keyless = MemobaseProfile({"url": memobase.url})
    health = await keyless.health_check()
    assert not health.ok and "MEMOBASE_API_KEY" in health.fix


async def test_missing_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "memobase", None)  # type: ignore[arg-type]
    prof = MemobaseProfile({"url": "http://127.0.0.1:9", "api_key": "k"})
    with pytest.raises(MissingExtraError) as info:
        await prof.get_profile("ada")
    assert "./install.sh --extras memobase" in str(info.value)
    health = await prof.health_check()
    assert not health.ok and "--extras memobase" in health.fix
