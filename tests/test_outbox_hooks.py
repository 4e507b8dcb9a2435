"""The writes of a saved turn, on SQLite and PostgreSQL alike: the turn hooks (memory,
profile) the turn writer runs, the jobs they queue, the profile job's growing count and
when it becomes due; a session stored with its first message."""

from __future__ import annotations

import logging
import time
from typing import Any

from cozy.core.persist import TurnWriter
from cozy.core.turn import ChatRequest, Turn
from cozy.engines.base import EngineContext
from cozy.engines.memory.jobs import MAX_COALESCED
from cozy.engines.memory.local import LocalMemory
from cozy.engines.profile.local import LocalProfile
from cozy.storage.job_queue import JobQueue
from cozy.storage.jobs import Job, backlog
from cozy.storage.store import NewMessage, SessionRow, Store


async def ask(writer: TurnWriter, session: SessionRow, text: str) -> str:
    """A turn's question, as the orchestrator stores it."""
    turn = Turn(ChatRequest(text), "req", time.perf_counter(), session=session)
    return await writer.question(turn, [NewMessage("user", text)])


async def answer(
    writer: TurnWriter,
    session: SessionRow,
    question: str,
    text: str,
    status: str = "complete",
    rounds: tuple[NewMessage, ...] = (),
) -> str | None:
    """The answer to `question` (and the tool rounds before it), as the orchestrator saves it."""
    turn = Turn(ChatRequest(""), "req", time.perf_counter(), session=session)
    turn.user_message_id, turn.text, turn.pending = question, [text], list(rounds)
    return await writer.answer(turn, status)


async def profile_job(queue: JobQueue, user_id: str) -> Job:
    (job,) = [j for j in await queue.list(user_id=user_id) if j.kind == "profile.update"]
    return job


async def test_turn_hooks_queue_jobs_and_buffer_the_profile(db_url: str) -> None:
    store = await Store.open(db_url)
    try:
        profile = LocalProfile({"min_chars": 30, "idle_seconds": 600}, EngineContext(store=store))
        memory = LocalMemory({"embeddings": False}, EngineContext(store=store))
        writer = TurnWriter(store, [profile.background(), memory.background()])
        queue = JobQueue(store)
        session = await store.create_session("ada", "assistant")
        other = await store.create_session("bob", "assistant")
        answers: list[str] = []
        for row, text in ((session, "hi there"), (other, "x" * 50), (session, "")):
            asked = await ask(writer, row, text)
            # a tool-call round and an interrupted answer queue nothing
            call = NewMessage("assistant", "", tool_calls=[{"id": "c", "name": "t"}])
            await answer(writer, row, asked, "cut", "interrupted", (call,))
            before = time.time()
            answers.append(str(await answer(writer, row, asked, "ok")))
            ada = await profile_job(queue, "ada")
            assert ada.payload == {"user_id": "ada", "chars": 8}  # "" adds nothing
            assert ada.run_after >= before + 599  # 8 < 30 chars: buffered
        bob = await profile_job(queue, "bob")
        assert bob.payload == {"user_id": "bob", "chars": 50} and bob.run_after <= time.time()
        # enough text: the same pending job (one per user) becomes due now, count summed
        asked = await ask(writer, session, "y" * 25)
        t = time.time()
        answers.append(str(await answer(writer, session, asked, "noted")))
        ada = await profile_job(queue, "ada")
        assert ada.payload == {"user_id": "ada", "chars": 33}
        assert t - 1 <= ada.run_after <= time.time()
        # memory: index and extract, one pending job per session and kind covering its
        # final answers (ids only), for the session's owner
        mine = [answers[0], answers[2], answers[3]]
        for kind in ("memory.turns", "memory.extract"):
            queued = [j for j in await queue.list() if j.kind == kind]
            covered = {j.payload["session_id"]: j.payload["message_ids"] for j in queued}
            assert covered == {session.id: mine, other.id: [answers[1]]}
            owners = {j.payload["session_id"]: j.user_id for j in queued}
            assert owners == {session.id: "ada", other.id: "bob"}
        # the session's title is set by its first message and kept
        assert (await store.get_session(session.id)).title == "hi there"
    finally:
        await store.close()


async def test_session_stored_with_its_first_message(db_url: str) -> None:
    store = await Store.open(db_url)
    try:
        await store.ensure_user("ada")
        fresh = store.new_session_row("ada", "assistant")
        titled = store.new_session_row("ada", "assistant", title="kept")
        plain = store.new_session_row("ada", "assistant")
        before = time.time()
        for row, title in ((fresh, "first words"), (titled, "ignored"), (plain, None)):
            ids = await store.add_messages(
                row.id, [NewMessage("user", "hello")], touch_title=title, create=row
            )
            assert [m.id for m in await store.list_messages(row.id)] == ids
        got = {s.id: s for s in await store.list_sessions("ada")}
        assert got[fresh.id].title == "first words"
        assert got[titled.id].title == "kept"
        assert got[plain.id].title is None
        for row in (fresh, titled, plain):  # touched by the write, made before it
            assert got[row.id].updated_at >= before >= got[row.id].created_at
        # the session listed first is the one written last
        assert (await store.list_sessions("ada"))[0].id == plain.id
    finally:
        await store.close()


async def test_memory_jobs_coalesce_per_session_and_stop_at_the_backlog_limit(
    db_url: str, caplog: Any
) -> None:
    store = await Store.open(db_url)
    try:
        memory = LocalMemory({"embeddings": False, "backlog_limit": 50}, EngineContext(store=store))
        writer = TurnWriter(store, [memory.background()])
        queue = JobQueue(store)
        session = await store.create_session("ada", "assistant")

        async def turn() -> str:
            return str(await answer(writer, session, await ask(writer, session, "hello"), "ok"))

        async def pending(kind: str) -> list[Job]:
            return [j for j in await queue.list(status="pending") if j.kind == kind]

        backlog.count(0)
        first = [await turn() for _ in range(MAX_COALESCED + 1)]
        jobs = sorted(await pending("memory.extract"), key=lambda j: len(j.payload["message_ids"]))
        # a full job is not joined: the next turn starts another one
        assert [j.payload["message_ids"] for j in jobs] == [first[-1:], first[:-1]]
        # a job a worker has claimed is not joined either (its payload is read already)
        while await queue.claim("w", kinds=["memory.extract"]) is not None:
            pass
        later = await turn()
        assert [j.payload["message_ids"] for j in await pending("memory.extract")] == [[later]]
        # over the limit: nothing queued, said once in the log, counted
        backlog.count(50)
        backlog._warned = 0.0  # the once-a-minute line, as in a fresh process
        dropped = backlog.dropped.get("memory.extract", 0)
        with caplog.at_level(logging.WARNING, logger="cozy.jobs"):
            await turn()
            await turn()
        assert len(await pending("memory.extract")) == 1
        assert backlog.dropped["memory.extract"] == dropped + 2
        warned = [r for r in caplog.records if "backlog over its limit" in r.getMessage()]
        assert len(warned) == 1, warned  # once a minute, not once a turn
        assert "memory.options.backlog_limit" in warned[0].getMessage()
        backlog.count(0)
        await turn()
        assert len((await pending("memory.extract"))[0].payload["message_ids"]) == 2
    finally:
        backlog.count(0)
        await store.close()
