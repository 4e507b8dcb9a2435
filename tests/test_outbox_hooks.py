"""The writes of a saved turn, on SQLite and PostgreSQL alike: the outbox hooks (memory,
profile), the jobs they queue, the profile job's growing count and when it becomes due;
a session stored with its first message."""

from __future__ import annotations

import time

from cozy.engines.base import EngineContext
from cozy.engines.memory.local import LocalMemory
from cozy.engines.profile.local import LocalProfile
from cozy.storage.jobs import Job, JobQueue
from cozy.storage.store import NewMessage, Store


async def profile_job(queue: JobQueue, user_id: str) -> Job:
    (job,) = [j for j in await queue.list(user_id=user_id) if j.kind == "profile.update"]
    return job


async def test_turn_hooks_queue_jobs_and_buffer_the_profile(db_url: str) -> None:
    store = await Store.open(db_url)
    try:
        profile = LocalProfile({"min_chars": 30, "idle_seconds": 600}, EngineContext(store=store))
        memory = LocalMemory({"embeddings": False}, EngineContext(store=store))
        store.outbox += [profile.background().outbox_hook, memory.background().outbox_hook]
        queue = JobQueue(store)
        session = await store.create_session("ada", "assistant")
        other = await store.create_session("bob", "assistant")
        answers: list[str] = []
        for sid, text in ((session.id, "hi there"), (other.id, "x" * 50), (session.id, "")):
            await store.add_messages(sid, [NewMessage("user", text)], touch_title=text or "t")
            # a tool-call round and an interrupted answer queue nothing
            await store.add_messages(
                sid,
                [
                    NewMessage("assistant", "", tool_calls=[{"id": "c", "name": "t"}]),
                    NewMessage("assistant", "cut", status="interrupted"),
                ],
            )
            before = time.time()
            answers.append((await store.add_messages(sid, [NewMessage("assistant", "ok")]))[0])
            ada = await profile_job(queue, "ada")
            assert ada.payload == {"user_id": "ada", "chars": 8}  # "" adds nothing
            assert ada.run_after >= before + 599  # 8 < 30 chars: buffered
        bob = await profile_job(queue, "bob")
        assert bob.payload == {"user_id": "bob", "chars": 50} and bob.run_after <= time.time()
        # enough text: the same pending job (one per user) becomes due now, count summed
        await store.add_messages(session.id, [NewMessage("user", "y" * 25)])
        t = time.time()
        answers += await store.add_messages(session.id, [NewMessage("assistant", "noted")])
        ada = await profile_job(queue, "ada")
        assert ada.payload == {"user_id": "ada", "chars": 33}
        assert t - 1 <= ada.run_after <= time.time()
        # memory: index and extract, once per final answer, ids only, for the session's owner
        for kind in ("memory.turns", "memory.extract"):
            queued = [j for j in await queue.list() if j.kind == kind]
            assert sorted(j.payload["message_id"] for j in queued) == sorted(answers)
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
