"""Branches and undo below the TUI (storage/branches.py), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from cozy.core.errors import NotFoundError, UsageError
from cozy.storage.branches import Branches
from cozy.storage.store import NewMessage, Store


async def _conversation(store: Store) -> tuple[str, list[str]]:
    s = await store.create_session("alice", "assistant", title="Lists", model="openai:x")
    ids = await store.add_messages(
        s.id,
        [
            NewMessage("user", "q1"),
            NewMessage("assistant", "a1"),
            NewMessage("user", "q2"),
            NewMessage("assistant", "", tool_calls=[{"id": "c", "name": "t", "arguments": "{}"}]),
            NewMessage("tool", "r", tool_call_id="c", name="t"),
            NewMessage("assistant", "a2"),
        ],
    )
    return s.id, ids


async def test_fork_copies_the_messages_before_the_point_and_keeps_the_original(
    db_url: str,
) -> None:
    store = await Store.open(db_url)
    try:
        sid, ids = await _conversation(store)
        branches = Branches(store)
        fork = await branches.fork(sid, "alice", before=ids[2])  # edit q2
        assert fork.id != sid and fork.title == "Lists" and fork.model == "openai:x"
        assert fork.metadata["branch"] == {"of": sid, "root": sid, "at": ids[2]}
        copied = await store.list_messages(fork.id)
        assert [m.content for m in copied] == ["q1", "a1"]
        assert {m.id for m in copied}.isdisjoint(ids)  # copies, not moved rows
        assert copied[0].metadata["copied_from"] == ids[0]
        assert [m.content for m in await store.list_messages(sid)] == [
            "q1", "a1", "q2", "", "r", "a2",
        ]  # fmt: skip
        # a branch of the branch still belongs to the same conversation
        second = await branches.fork(fork.id, "alice", before=None)
        assert second.metadata["branch"]["root"] == sid
        assert len(await store.list_messages(second.id)) == 2
        listed = await branches.of_conversation(second.id, "alice")
        assert [b.session.id for b in listed] == [sid, fork.id, second.id]
        assert [b.message_count for b in listed] == [6, 2, 2]
        assert listed[1].of == sid and listed[1].at == ids[2]
        other = await store.create_session("alice", "assistant")
        assert [b.session.id for b in await branches.of_conversation(other.id, "alice")] == [
            other.id
        ]
        with pytest.raises(NotFoundError):
            await branches.fork(sid, "alice", before="msg_nope")
        with pytest.raises(NotFoundError):
            await branches.fork(sid, "bob", before=None)  # not bob's session
    finally:
        await store.close()


async def test_take_back_the_last_exchange(db_url: str) -> None:
    store = await Store.open(db_url)
    try:
        sid, ids = await _conversation(store)
        branches = Branches(store)
        gone = await branches.take_back_last_exchange(sid, "alice")
        assert [m.id for m in gone] == ids[2:]  # q2, the tool call, its result, a2
        assert [m.content for m in await store.list_messages(sid)] == ["q1", "a1"]
        await branches.take_back_last_exchange(sid, "alice")
        assert await store.list_messages(sid) == []
        with pytest.raises(UsageError, match="nothing to undo"):
            await branches.take_back_last_exchange(sid, "alice")
    finally:
        await store.close()


async def test_fragments_are_linked_not_copied_through_fork_undo_and_search(
    db_url: str,
) -> None:
    """A message's fragments are kept once and linked: read back whole, carried into a
    branch by link, unlinked (text kept) by undo, and found by the session search."""
    from cozy.storage.attach import Fragment, assemble
    from cozy.storage.fragments import Fragments

    store = await Store.open(db_url)
    try:
        spec = Fragment("spec.md", "the tide turns at 4 pm\n")
        code = Fragment("a.py", "x = '```'\n")
        s = await store.create_session("alice", "assistant")
        ids = await store.add_messages(
            s.id,
            [
                NewMessage("user", "when?", fragments=[spec, code]),
                NewMessage("assistant", "at four"),
                NewMessage("user", "and tomorrow?", fragments=[spec]),
                NewMessage("assistant", "later"),
            ],
        )
        rows = await store.list_messages(s.id)
        whole = assemble([spec, code], "when?")
        assert rows[0].content == whole and whole.startswith("spec.md:\n```\nthe tide")
        assert rows[0].typed == "when?" and rows[0].fragments == [spec, code]
        assert rows[1].content == "at four" and rows[1].fragments == []
        assert [r.content for r in await store.recent_messages(s.id, 2)] == [
            assemble([spec], "and tomorrow?"),
            "later",
        ]
        kept = {f.hash: f.messages for f in await Fragments(store).list()}
        assert kept == {spec.sha256: 2, code.sha256: 1}

        branches = Branches(store)
        fork = await branches.fork(s.id, "alice", before=ids[2])
        copied = await store.list_messages(fork.id)
        assert copied[0].content == whole and copied[0].id != ids[0]
        kept = {f.hash: f.messages for f in await Fragments(store).list()}
        assert kept == {spec.sha256: 3, code.sha256: 2}

        gone = await branches.take_back_last_exchange(s.id, "alice")
        assert gone[0].own_text == "and tomorrow?" and gone[0].fragments == [spec]
        kept = {f.hash: f.messages for f in await Fragments(store).list()}
        assert kept == {spec.sha256: 2, code.sha256: 2}  # text kept, one link fewer

        found = await store.list_sessions("alice", query="TIDE TURNS")
        assert {r.id for r in found} == {s.id, fork.id}
        assert {r.id for r in await store.list_sessions("alice", query="a.py")} == {s.id, fork.id}
        assert await store.list_sessions("alice", query="nowhere at all") == []
    finally:
        await store.close()
