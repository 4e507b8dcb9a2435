"""memory.mem0: the real mem0 library in-process, against the fake model server and
cozy's local MiniLM embedder. Any network attempt to a non-loopback address fails."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import collect, open_runtime, req, running
from net_guard import loopback_only

from cozy.core.errors import CozyError, EngineError, MissingExtraError
from cozy.core.events import ContextBuilt, Done
from cozy.core.types import Message
from cozy.engines.memory.mem0_provider import Mem0Memory
from cozy.runtime import Runtime
from cozy.testing import FakeModelServer

pytest.importorskip("mem0", reason="needs the mem0 extra: ./install.sh --extras mem0")

# only the memory engine under test: the packaged knowledge/profile timeouts (0.3-0.5 s)
# would add their own (correct) degrade reason to a turn on a busy machine
OTHERS_OFF = "knowledge: {provider: none}\nprofile: {provider: none}\nembed: {provider: local}\n"
MEM0 = "memory: {provider: mem0, infer: false, timeout: 30}\n" + OTHERS_OFF
MEM0_INFER = "memory: {provider: mem0, timeout: 30}\n" + OTHERS_OFF


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Connections anywhere but loopback (telemetry, downloads) fail the test."""
    with loopback_only(monkeypatch, "mem0") as attempts:
        yield attempts


async def _engine(rt: Runtime) -> Mem0Memory:
    engine = rt.engines["memory"]
    assert isinstance(engine, Mem0Memory)
    await engine.client()
    return engine


async def test_add_raw_and_search_per_user(cozy_home: Path, fake_model: FakeModelServer) -> None:
    async with running(cozy_home, fake_model.url, MEM0) as rt:
        mem = await _engine(rt)
        ids = await mem.add_memory(
            [Message("user", "My cat Miso loves tuna and sleeps on the piano.")],
            user_id="ada",
            session_id="s1",
            source_ids=["msg_1"],
        )
        await mem.add_memory([Message("user", "I drive a red bicycle to work.")], user_id="bob")
        assert len(ids) == 1
        hits = await mem.search_memories("what does my cat eat?", user_id="ada")
        assert [h.id for h in hits] == ids
        assert "Miso" in hits[0].text and hits[0].score > 0.2
        assert hits[0].source_message_ids == ["msg_1"]
        assert hits[0].metadata["session_id"] == "s1"
        # per-user filter: bob never sees ada's memory, and the other way round
        bob = await mem.search_memories("what does my cat eat?", user_id="bob")
        assert all("Miso" not in h.text for h in bob)
        assert await mem.search_memories("bicycle", user_id="nobody") == []
        # infer off: mem0 never called the model
        assert fake_model.chat_requests() == []
        # its files live under COZY_HOME
        assert (cozy_home / "mem0" / "qdrant").is_dir()
        assert (cozy_home / "mem0" / "history.db").is_file()
        health = await mem.health_check()
        assert health.ok and "infer=off" in health.detail


async def test_add_with_inference_uses_cozy_model(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    fake_model.add_rule(
        user_contains="Rex",
        json={"memory": [{"text": "Has a beagle named Rex"}, {"text": "Lives in Lyon"}]},
    )
    async with running(cozy_home, fake_model.url, MEM0_INFER) as rt:
        mem = await _engine(rt)
        msgs = [
            Message("user", "My beagle Rex and I just moved to Lyon."),
            Message("assistant", "Welcome to Lyon!"),
        ]
        ids = await mem.add_memory(msgs, user_id="ada")
        assert len(ids) == 2
        (call,) = fake_model.chat_requests()
        assert call.path == "/api/chat"  # the configured AI engine (Ollama API), not OpenAI
        assert call.get("format") == "json"
        hits = await mem.search_memories("what is the name of my dog?", user_id="ada")
        assert hits[0].text == "Has a beagle named Rex"
        # the same fact again is deduplicated by mem0 (hash match)
        assert await mem.add_memory(msgs, user_id="ada") == []


async def test_model_failure_is_a_cozy_error(cozy_home: Path, fake_model: FakeModelServer) -> None:
    async with running(cozy_home, fake_model.url, MEM0_INFER) as rt:
        mem = await _engine(rt)
        fake_model.fail_next(500, times=5)
        with pytest.raises(CozyError) as info:
            await mem.add_memory([Message("user", "I like tea")], user_id="ada")
        assert "500" in str(info.value) or "model" in str(info.value).lower()


async def test_chat_turn_becomes_memory_and_is_recalled(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    async with running(cozy_home, fake_model.url, MEM0) as rt:
        await _engine(rt)
        events = await collect(rt.orchestrator.run(req("My favourite tea is genmaicha.")))
        first = events[-1]
        assert isinstance(first, Done) and first.message_id
        stats = await rt.drain_jobs()
        assert stats.done >= 1 and stats.failed == 0
        events = await collect(rt.orchestrator.run(req("Which tea do I like?")))
        ctx = next(e for e in events if isinstance(e, ContextBuilt))
        assert not ctx.metadata["degraded"], ctx.metadata["degrade_reasons"]
        assert any("genmaicha" in m["text"] for m in ctx.metadata["memories"])
        prompt = str(fake_model.turn_requests()[-1]["messages"])
        assert "genmaicha" in prompt
        # a job that runs again (at-least-once delivery) does not add the turn twice
        mem = await _engine(rt)
        payload = {"session_id": first.session_id, "message_id": first.message_id}
        await mem.background().add_turn(payload, None)
        hits = await mem.search_memories("genmaicha", user_id="local", limit=10)
        texts = [h.text for h in hits]
        assert texts.count("My favourite tea is genmaicha.") == 1, texts
        roles = sorted(h.metadata.get("role", "") for h in hits if "genmaicha" in h.text)
        assert roles == ["assistant", "user"]


HOLDER = """
import sys, time
from qdrant_client import QdrantClient
client = QdrantClient(path=sys.argv[1])
print("ready", flush=True)
time.sleep(3600)  # held until the fixture kills it, however slow the test runs
"""


@pytest.fixture
def held_store(cozy_home: Path) -> Iterator[Path]:
    """Another process holding mem0's local store (as a second cozy would)."""
    path = cozy_home / "mem0" / "qdrant"
    path.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        yield path
    finally:
        holder.kill()
        holder.wait()


def test_cli_memory_commands_through_mem0(cozy_home: Path, fake_model: FakeModelServer) -> None:
    """`cozy memory` manages mem0's memories too (ManagesMemories); restore says why not."""
    import json

    from helpers import write_engines
    from typer.testing import CliRunner

    from cozy.cli._common import state
    from cozy.cli.app import app

    state._settings = None  # settings are cached per process: this test has its own home
    write_engines(cozy_home, fake_model.url, MEM0)
    run = CliRunner().invoke
    assert "nothing remembered yet" in run(app, ["memory", "list"]).output
    added = json.loads(run(app, ["memory", "add", "I play the cello", "--json"]).output)
    mid = added["id"]
    assert added["created"] is True
    assert "already remembered" in run(app, ["memory", "add", "i play the CELLO"]).output
    listed = json.loads(run(app, ["memory", "list", "--json"]).output)
    assert [(r["id"], r["text"]) for r in listed] == [(mid, "I play the cello")]
    found = json.loads(run(app, ["memory", "search", "cello", "--json"]).output)
    assert [r["id"] for r in found["results"]] == [mid]
    assert run(app, ["memory", "edit", mid, "I play the viola"]).exit_code == 0
    assert "viola" in run(app, ["memory", "list"]).output
    hist = json.loads(run(app, ["memory", "history", mid, "--json"]).output)
    assert [h["action"] for h in hist] == ["add", "update"]
    assert hist[-1]["new_text"] == "I play the viola"
    out = cozy_home / "export.json"
    assert run(app, ["memory", "export", "-o", str(out)]).exit_code == 0
    data = json.loads(out.read_text())
    assert data["count"] == 1 and len(data["memories"][0]["history"]) == 2
    forgot = run(app, ["memory", "forget", mid])
    assert forgot.exit_code == 0 and "for good" in forgot.output
    assert "viola" not in run(app, ["memory", "list", "--all"]).output
    restore = run(app, ["memory", "restore", mid])
    assert restore.exit_code == 2 and "deletes memories for good" in restore.output
    missing = run(app, ["memory", "forget", "nope"])
    assert missing.exit_code == 2 and "cozy memory list" in missing.output
    # another user's memory is not this user's to edit
    other = json.loads(run(app, ["memory", "add", "I like tea", "--json"]).output)["id"]
    state._settings = None
    elsewhere = CliRunner(env={"COZY_USER": "bob"}).invoke(app, ["memory", "edit", other, "x"])
    assert elsewhere.exit_code == 2 and "cozy memory list" in elsewhere.output


async def test_store_held_by_another_process(
    cozy_home: Path, fake_model: FakeModelServer, held_store: Path
) -> None:
    async with running(cozy_home, fake_model.url, MEM0) as rt:  # opening never fails
        mem = rt.engines["memory"]
        with pytest.raises(EngineError) as info:
            await mem.search_memories("tea", user_id="local")  # type: ignore[attr-defined]
        assert "another cozy process" in str(info.value)
        health = await mem.health_check()
        assert not health.ok and "close the other cozy" in health.fix
        # the chat still answers, with the memory stage degraded and the reason given
        events = await collect(rt.orchestrator.run(req("hello")))
        ctx = next(e for e in events if isinstance(e, ContextBuilt))
        assert ctx.metadata["degraded"]
        assert "another cozy process" in " ".join(ctx.metadata["degrade_reasons"])
        assert isinstance(events[-1], Done) and events[-1].status == "complete"


async def test_one_client_per_path_in_a_process(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    rt1 = await open_runtime(cozy_home, fake_model.url, MEM0)
    rt2 = await Runtime.open(rt1.settings)
    try:
        a, b = await _engine(rt1), await _engine(rt2)
        assert await a.client() is await b.client()
        await a.add_memory([Message("user", "I collect vinyl records")], user_id="u")
        await rt1.close()  # the other runtime keeps the shared client
        hits = await b.search_memories("music collection", user_id="u")
        assert hits and "vinyl" in hits[0].text
    finally:
        await rt1.close()
        await rt2.close()


async def test_missing_extra_names_the_install_command(
    cozy_home: Path, fake_model: FakeModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cozy.engines.memory import mem0_bridge

    for name in [m for m in sys.modules if m == "mem0" or m.startswith("mem0.")]:
        monkeypatch.setitem(sys.modules, name, None)  # type: ignore[arg-type]
    with pytest.raises(MissingExtraError) as info:
        mem0_bridge.import_mem0(cozy_home / "mem0")
    assert "./install.sh --extras mem0" in str(info.value)
    async with running(cozy_home, fake_model.url, MEM0) as rt:
        health = await rt.engines["memory"].health_check()
        assert not health.ok and "--extras mem0" in health.fix


def test_mem0_is_not_imported_by_cozy_startup() -> None:
    started = time.perf_counter()
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, cozy.cli.app, cozy.runtime, cozy.engines.memory.mem0_provider;"
            "print('mem0' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "False", time.perf_counter() - started
