"""memory.local end to end: real SQLite (FTS5), real jobs, the fake model for extraction
and for embeddings (through the real OpenAI SDK)."""

from __future__ import annotations

import logging
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest
from helpers import collect, req, running

from cozy.core.events import ContextBuilt, Done, Failed
from cozy.core.types import Caller
from cozy.engines.memory.types import TurnInput
from cozy.runtime import Runtime
from cozy.testing import FakeModelServer


def engines_yaml(fake: FakeModelServer, memory: str = "", embed: bool = True) -> str:
    out = f"memory: {{provider: local, timeout: 5{memory}}}\nprofile: {{provider: none}}\n"
    if not embed:
        out += "embed: {provider: none}\n"
    else:
        out += (
            f"embed: {{provider: openai, base_url: '{fake.url}/v1', model: fake-embed, "
            "api_key: test}\n"
        )
    return out


def mem_running(
    home: Path, fake: FakeModelServer, **kw: object
) -> AbstractAsyncContextManager[Runtime]:
    """A runtime with the local memory engine (`engines_yaml`), closed when the block ends."""
    return running(home, fake.url, engines_yaml(fake, **kw))  # type: ignore[arg-type]


def ops(*items: dict[str, str]) -> dict[str, object]:
    return {"operations": list(items)}


async def turn(rt: Runtime, prompt: str, user: str = "local", **kw: object) -> list[object]:
    return await collect(rt.orchestrator.run(req(prompt, caller=Caller(user_id=user), **kw)))


async def test_extraction_adds_facts_and_indexes_turns(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    async with mem_running(cozy_home, fake_model) as rt:
        events = await turn(rt, "My sister Ana moved to Lisbon last year")
        done = events[-1]
        assert isinstance(done, Done)
        counts = await rt.jobs.counts()
        assert counts["pending"] == 2  # the answer is not blocked: jobs wait in the outbox
        fake_model.add_rule(
            user_contains="New conversation",
            json=ops({"op": "add", "text": "The user's sister Ana lives in Lisbon"}),
        )
        stats = await rt.drain_jobs()
        assert (stats.done, stats.failed) == (2, 0)
        # the extraction request asked for structured output with our schema
        extraction = [
            r.body for r in fake_model.chat_requests() if "New conversation" in str(r.body)
        ]
        assert extraction and "format" in extraction[-1]
        mem = rt.engines["memory"]
        facts = await mem.list_memories("local")  # type: ignore[attr-defined]
        assert [f.text for f in facts] == ["The user's sister Ana lives in Lisbon"]
        assert done.message_id in facts[0].source_message_ids
        turns = await mem.list_memories("local", kinds=("turn",))  # type: ignore[attr-defined]
        assert [t.text for t in turns] == ["My sister Ana moved to Lisbon last year"]
        # the next turn (new session) gets the memory in its context and prompt
        events = await turn(rt, "Where does my sister live?")
        built = next(e for e in events if isinstance(e, ContextBuilt))
        assert facts[0].id in built.metadata["memory_ids"]
        assert built.metadata["degrade_reasons"] == []
        system = fake_model.turn_requests()[-1]["messages"][0]["content"]
        assert "Ana lives in Lisbon" in system
        # re-running the same jobs changes nothing (idempotent)
        bg = mem.background()  # type: ignore[attr-defined]
        for job in await rt.jobs.list(status="done"):
            await bg.handlers()[job.kind](job.payload, job)
        assert len(await mem.list_memories("local")) == 1  # type: ignore[attr-defined]
        assert len(await mem.list_memories("local", kinds=("turn",))) == 1  # type: ignore[attr-defined]


async def test_update_keeps_history_and_obsolete_is_soft(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    async with mem_running(cozy_home, fake_model) as rt:
        mem = rt.engines["memory"]
        old_id, created = await mem.remember("local", "The user works at Acme")  # type: ignore[attr-defined]
        other, _ = await mem.remember("local", "The user drives a red car")  # type: ignore[attr-defined]
        assert created
        fake_model.add_rule(
            user_contains="New conversation",
            json=ops(
                {
                    "op": "update",
                    "id": "m1",
                    "text": "The user works at Globex",
                    "reason": "new job",
                },
                {"op": "obsolete", "id": "m2", "reason": "sold the car"},
            ),
        )
        fake_model.queue_reply("Congrats!")
        await turn(rt, "I left Acme and work at Globex now; I sold my red car, the one I drove")
        # m1/m2 follow the search order: make the test independent of it
        stats = await rt.drain_jobs()
        assert stats.failed == 0
        rows = {r.id: r for r in await mem.list_memories("local", include_removed=True)}  # type: ignore[attr-defined]
        texts = sorted((r.text, r.status) for r in rows.values())
        assert len(rows) == 2
        assert any(s == "obsolete" for _, s in texts)
        updated = next(r for r in rows.values() if r.status == "active")
        hist = await mem.history("local", updated.id)  # type: ignore[attr-defined]
        assert [h["action"] for h in hist] == ["add", "update"]
        assert hist[1]["old_text"] in ("The user works at Acme", "The user drives a red car")
        assert hist[1]["reason"] in ("new job", "sold the car")
        assert {old_id, other} == set(rows)


async def test_forget_restore_and_duplicates(cozy_home: Path, fake_model: FakeModelServer) -> None:
    async with mem_running(cozy_home, fake_model) as rt:
        mem = rt.engines["memory"]
        mid, created = await mem.remember("local", "The user likes green tea")  # type: ignore[attr-defined]
        assert created
        # exact duplicate (case, spacing, punctuation) and near duplicate are not stored twice
        assert await mem.remember("local", "the user likes  GREEN tea!") == (mid, False)  # type: ignore[attr-defined]
        assert (await mem.remember("local", "The user likes green tea."))[1] is False  # type: ignore[attr-defined]
        hits = await mem.search("green tea", user_id="local")  # type: ignore[attr-defined]
        assert [h.id for h in hits] == [mid]
        await mem.forget("local", mid)  # type: ignore[attr-defined]
        assert await mem.search("green tea", user_id="local") == []  # type: ignore[attr-defined]
        listed = await mem.list_memories("local", include_removed=True)  # type: ignore[attr-defined]
        assert [(r.id, r.status) for r in listed] == [(mid, "deleted")]
        await mem.restore("local", mid)  # type: ignore[attr-defined]
        assert [h.id for h in await mem.search("tea", user_id="local")] == [mid]  # type: ignore[attr-defined]
        actions = [h["action"] for h in await mem.history("local", mid)]  # type: ignore[attr-defined]
        assert actions == ["add", "forget", "restore"]


async def test_keyword_fallback_without_embedder(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    async with mem_running(cozy_home, fake_model, embed=False) as rt:
        mem = rt.engines["memory"]
        await mem.remember("local", "The user's dog is called Biscuit")  # type: ignore[attr-defined]
        events = await turn(rt, "what is my dog called?")
        built = next(e for e in events if isinstance(e, ContextBuilt))
        assert len(built.metadata["memory_ids"]) == 1
        reasons = built.metadata["degrade_reasons"]
        assert reasons and "keyword search only" in reasons[0] and "embed" in reasons[0]
        assert isinstance(events[-1], Done)


async def test_users_never_see_each_others_memories(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    async with mem_running(cozy_home, fake_model) as rt:
        mem = rt.engines["memory"]
        await mem.remember("alice", "Alice's bank PIN hint is the cat's birthday")  # type: ignore[attr-defined]
        await turn(rt, "Alice's cat's birthday and the bank PIN hint", user="alice")
        await rt.drain_jobs()
        events = await turn(rt, "what is Alice's bank PIN hint? cat birthday", user="bob")
        built = next(e for e in events if isinstance(e, ContextBuilt))
        assert built.metadata["memory_ids"] == []
        sent = str(fake_model.turn_requests()[-1]["messages"])
        assert "PIN hint is" not in sent
        assert await mem.search("bank PIN hint cat", user_id="bob") == []  # type: ignore[attr-defined]


async def test_invalid_json_gives_up_without_partial_writes(
    cozy_home: Path, fake_model: FakeModelServer, caplog: pytest.LogCaptureFixture
) -> None:
    # the model's answer is cut by max_tokens: the JSON is invalid every time
    async with mem_running(cozy_home, fake_model, memory=", extract_max_tokens: 8") as rt:
        long_ops = [
            {"op": "add", "text": f"The user owns item number {i} of many"} for i in range(9)
        ]
        fake_model.add_rule(user_contains="New conversation", json={"operations": long_ops})
        await turn(rt, "I own lots of things")
        with caplog.at_level(logging.WARNING):
            stats = await rt.drain_jobs()
        assert stats.failed == 1 and stats.done == 1  # turns indexed, extraction gave up
        failed = await rt.jobs.list(status="failed")
        assert failed[0].kind == "memory.extract"
        assert "invalid JSON" in (failed[0].last_error or "")
        assert "attempt 2" in (failed[0].last_error or "")  # retried before giving up
        assert await rt.engines["memory"].list_memories("local") == []  # type: ignore[attr-defined]
        assert "rejected" in caplog.text


async def test_memory_timeout_degrades_but_answers(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    async with running(
        cozy_home, fake_model.url, "memory: {provider: local, timeout: 0.000001}\n"
    ) as rt:
        events = await turn(rt, "hello there")
        built = next(e for e in events if isinstance(e, ContextBuilt))
        assert any("timed out" in r for r in built.metadata["degrade_reasons"])
        assert isinstance(events[-1], Done) and events[-1].text


async def test_huge_message_and_empty_store(cozy_home: Path, fake_model: FakeModelServer) -> None:
    async with mem_running(cozy_home, fake_model) as rt:
        mem = rt.engines["memory"]
        assert await mem.search("anything at all", user_id="local") == []  # type: ignore[attr-defined]
        assert await mem.search("", user_id="local") == []  # type: ignore[attr-defined]
        big = ("lorem ipsum dolor sit amet " * 40000)[:1_000_000] + " zebracorn"
        ids = await mem.index_turns(  # type: ignore[attr-defined]
            [TurnInput("msg_big", "user", big)], user_id="local", session_id="ses_x"
        )
        assert 1 < len(ids) <= mem.max_chunks  # type: ignore[attr-defined]
        turns = await mem.list_memories("local", kinds=("turn",))  # type: ignore[attr-defined]
        assert all(len(t.text) <= mem.chunk_chars for t in turns)  # type: ignore[attr-defined]
        # indexing the same message again (a re-run job) adds nothing
        assert (
            await mem.index_turns(  # type: ignore[attr-defined]
                [TurnInput("msg_big", "user", big)], user_id="local", session_id="ses_x"
            )
            == []
        )
        # a 1 MB prompt is refused by the context budget with a clear message, before
        # anything is stored (no session holding a megabyte nobody can send)
        events = await turn(rt, big)
        failed = events[-1]
        assert isinstance(failed, Failed) and "token" in failed.error["message"]
        assert failed.session_id is None and await rt.store.list_sessions("local") == []


def test_cli_memory_commands(cozy_home: Path, fake_model: FakeModelServer) -> None:
    import json

    from helpers import write_engines
    from typer.testing import CliRunner

    from cozy.cli._common import state
    from cozy.cli.app import app

    state._settings = None  # settings are cached per process: this test has its own home
    write_engines(cozy_home, fake_model.url, engines_yaml(fake_model))
    run = CliRunner().invoke
    assert "nothing remembered yet" in run(app, ["memory", "list"]).output
    added = json.loads(run(app, ["memory", "add", "I play the cello", "--json"]).output)
    mid = added["id"]
    assert added["created"] is True
    assert "already remembered" in run(app, ["memory", "add", "i play the CELLO"]).output
    found = json.loads(run(app, ["memory", "search", "cello", "--json"]).output)
    assert [r["id"] for r in found["results"]] == [mid]
    assert run(app, ["memory", "edit", mid, "I play the viola"]).exit_code == 0
    hist = run(app, ["memory", "history", mid])
    assert "edit" in hist.output and "viola" in hist.output
    assert f"cozy memory restore {mid}" in run(app, ["memory", "forget", mid]).output
    assert "viola" not in run(app, ["memory", "list"]).output
    assert "viola" in run(app, ["memory", "list", "--all"]).output
    assert run(app, ["memory", "restore", mid]).exit_code == 0
    out = cozy_home / "export.json"
    assert run(app, ["memory", "export", "-o", str(out)]).exit_code == 0
    data = json.loads(out.read_text())
    assert data["count"] == 1 and len(data["memories"][0]["history"]) == 4
    missing = run(app, ["memory", "forget", "mem_nope"])
    assert missing.exit_code == 2 and "cozy memory list" in missing.output
    empty = run(app, ["memory", "add", "   "])
    assert empty.exit_code == 2 and "empty" in empty.output


async def test_turns_of_a_session_saved_while_the_worker_is_behind_are_one_extraction(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    async with mem_running(cozy_home, fake_model) as rt:
        first = await turn(rt, "My brother Tom plays the cello", session="new")
        sid = first[-1].session_id  # type: ignore[attr-defined]
        await turn(rt, "He lives in Porto with his cat", session=sid)
        last = await turn(rt, "His cat is called Miso", session=sid)
        assert (await rt.jobs.counts())["pending"] == 2  # one per kind for the session
        fake_model.add_rule(
            user_contains="New conversation",
            json=ops({"op": "add", "text": "The user's brother Tom has a cat called Miso"}),
        )
        stats = await rt.drain_jobs()
        assert (stats.done, stats.failed) == (2, 0)
        extraction = [
            str(r.body) for r in fake_model.chat_requests() if "New conversation" in str(r.body)
        ]
        assert len(extraction) == 1  # one model call for the three turns
        assert all(t in extraction[0] for t in ("cello", "Porto", "Miso"))
        mem = rt.engines["memory"]
        facts = await mem.list_memories("local")  # type: ignore[attr-defined]
        assert last[-1].message_id in facts[0].source_message_ids  # type: ignore[attr-defined]
        turns = await mem.list_memories("local", kinds=("turn",))  # type: ignore[attr-defined]
        assert len(turns) == 3  # every turn indexed


def test_cli_memory_search_leaves_out_unrelated_memories(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    """The threshold on meaning (the real MiniLM embedder): an unrelated question finds
    nothing instead of every memory with a fused score."""
    import json

    from helpers import cozy, write_engines

    write_engines(cozy_home, fake_model.url)
    for text in ("I like green tea", "My sister Anna lives in Lisbon", "I am a nurse"):
        assert cozy("memory", "add", text).returncode == 0

    def found(*args: str) -> list[dict]:
        r = cozy("memory", "search", *args, "--json")
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)["results"]

    assert found("quantum physics") == []
    near = found("where does my sister live")
    assert [h["text"] for h in near] == ["My sister Anna lives in Lisbon"]
    assert near[0]["similarity"] >= 0.25
    assert len(found("quantum physics", "--min-similarity", "0")) == 3
    plain = cozy("memory", "search", "quantum physics")
    assert "no matching memories" in plain.stdout and "--min-similarity 0" in plain.stdout
    # a one-shot `cozy run` does not start loading the embedder it could not wait for
    # (the process would sit after the answer until the model loaded): keywords by
    # design, found without a degradation warning on every run
    r = cozy("run", "--json", "where does my sister live?", stdin="")
    assert r.returncode == 0, r.stderr
    ctx = json.loads(r.stdout)["context"]
    assert not ctx["degraded"] and ctx["degrade_reasons"] == [], ctx
    assert [m for m in ctx["memory_ids"] if m] and "still loading" not in str(ctx)
    plain = cozy("run", "where does my sister live?", stdin="")
    assert plain.returncode == 0 and "context degraded" not in plain.stderr, plain.stderr
