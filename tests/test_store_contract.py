"""The store contract, run against SQLite and the real local PostgreSQL alike."""

from __future__ import annotations

import pytest

from cozy.core.errors import NotFoundError, StorageError
from cozy.storage import migrations
from cozy.storage.store import NewMessage, Store


async def test_contract_sessions_messages_audit(db_url: str) -> None:
    store = await Store.open(db_url)
    try:
        status = await store.migration_status()
        assert status["pending"] == [] and status["applied"] == migrations.known_names()
        s = await store.create_session("alice", "assistant", metadata={"k": [1, 2]})
        ids = await store.add_messages(
            s.id,
            [
                NewMessage("user", "hello ünïcode ✓"),
                NewMessage(
                    "assistant",
                    "",
                    tool_calls=[{"id": "c1", "name": "t.x", "arguments": "{}"}],
                    metadata={"nested": {"a": 1}},
                ),
                NewMessage("tool", "result", tool_call_id="c1", name="t.x"),
                NewMessage("assistant", "partial", status="interrupted", prompt_tokens=12),
            ],
            touch_title="hello",
        )
        assert len(ids) == 4 and ids == sorted(ids)
        msgs = await store.list_messages(s.id)
        assert [m.role for m in msgs] == ["user", "assistant", "tool", "assistant"]
        assert msgs[0].content == "hello ünïcode ✓"
        assert msgs[1].tool_calls == [{"id": "c1", "name": "t.x", "arguments": "{}"}]
        assert msgs[1].metadata == {"nested": {"a": 1}}
        assert msgs[3].status == "interrupted" and msgs[3].prompt_tokens == 12
        assert [m.id for m in await store.recent_messages(s.id, 2)] == ids[2:]
        page = await store.list_messages(s.id, limit=2, offset=1)
        assert [m.id for m in page] == ids[1:3]
        got = await store.get_session(s.id, user_id="alice")
        assert got.title == "hello" and got.metadata == {"k": [1, 2]}
        assert (await store.list_sessions("alice", query="ÜNÏCODE".lower()))[0].id == s.id
        with pytest.raises(NotFoundError):
            await store.get_session(s.id, user_id="mallory")
        with pytest.raises(NotFoundError):
            await store.update_session(s.id, "mallory", title="mine now")
        await store.delete_session(s.id, "alice")
        assert await store.list_sessions("alice") == []
        assert len(await store.list_sessions("alice", include_deleted=True)) == 1
        await store.add_audit("tool_call", user_id="alice", tool="t.x", detail={"x": 1})
        audit = await store.list_audit(user_id="alice")
        assert audit[0]["tool"] == "t.x" and audit[0]["detail"] == {"x": 1}
    finally:
        await store.close()
    # reopen: nothing pending, data intact
    store = await Store.open(db_url)
    try:
        assert (await store.migration_status())["pending"] == []
        assert len(await store.list_messages(s.id)) == 4
    finally:
        await store.close()


async def test_unreachable_postgres_names_the_url() -> None:
    with pytest.raises(StorageError, match=r"127\.0\.0\.1:9/nope"):
        await Store.open("postgresql://someone:secret@127.0.0.1:9/nope")
