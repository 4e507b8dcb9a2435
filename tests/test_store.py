"""The SQL store on SQLite: migrations, corruption, locking, two processes."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cozy.core.errors import NotFoundError, StorageError
from cozy.storage import migrations
from cozy.storage.store import NewMessage, Store


def url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


async def test_migrations_on_empty_and_existing_db(tmp_path: Path) -> None:
    db = tmp_path / "cozy.db"
    store = await Store.open(url(db))
    status = await store.migration_status()
    assert status["applied"] == migrations.known_names() and status["pending"] == []
    s = await store.create_session("u1", "assistant", title="first")
    await store.add_message(s.id, NewMessage("user", "hello"))
    await store.close()
    # reopening an existing database keeps the data and applies nothing twice
    store = await Store.open(url(db))
    msgs = await store.list_messages(s.id)
    assert [m.content for m in msgs] == ["hello"]
    with sqlite3.connect(db) as conn:
        names = [r[0] for r in conn.execute("select name from schema_migrations")]
        mode = conn.execute("pragma journal_mode").fetchone()[0]
    assert names == migrations.known_names() and mode == "wal"
    await store.close()


async def test_pending_step_applied_on_an_older_db(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "cozy.db"
    await (await Store.open(url(db))).close()
    ran: list[str] = []
    extra = ("9999_test_step", lambda conn: ran.append("yes"))
    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, extra])
    store = await Store.open(url(db))
    assert ran == ["yes"] and "9999_test_step" in (await store.migration_status())["applied"]
    await store.close()


async def test_newer_database_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "cozy.db"
    await (await Store.open(url(db))).close()
    with sqlite3.connect(db) as conn:
        conn.execute("insert into schema_migrations values ('9999_from_the_future', 0)")
    with pytest.raises(StorageError, match=r"9999_from_the_future.*upgrade cozy"):
        await Store.open(url(db))


async def test_failed_step_is_rolled_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlalchemy as sa

    db = tmp_path / "cozy.db"
    await (await Store.open(url(db))).close()

    def bad_step(conn: sa.Connection) -> None:
        conn.execute(
            sa.text(
                "insert into users (id, role, status, created_at) "
                "values ('half', 'user', 'active', 0)"
            )
        )
        raise RuntimeError("step failed half-way")

    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, ("9998_bad", bad_step)])
    with pytest.raises(RuntimeError):
        await Store.open(url(db))
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from users where id='half'").fetchone()[0] == 0
        names = [r[0] for r in conn.execute("select name from schema_migrations")]
    assert "9998_bad" not in names


async def test_corrupt_file_is_never_overwritten(tmp_path: Path) -> None:
    db = tmp_path / "cozy.db"
    junk = b"this is not a database at all" * 100
    db.write_bytes(junk)
    with pytest.raises(StorageError, match=r"not a SQLite database.*move it aside"):
        await Store.open(url(db))
    assert db.read_bytes() == junk


async def test_unreadable_file(tmp_path: Path) -> None:
    db = tmp_path / "cozy.db"
    db.mkdir()  # a directory where the file should be
    with pytest.raises(StorageError):
        await Store.open(url(db))


async def test_sessions_soft_delete_search_and_ownership(tmp_path: Path) -> None:
    store = await Store.open(url(tmp_path / "c.db"))
    a = await store.create_session("alice", "assistant")
    await store.add_messages(
        a.id,
        [
            NewMessage("user", "tell me about zebras"),
            NewMessage("assistant", "stripes", status="interrupted"),
        ],
        touch_title="zebras",
    )
    b = await store.create_session("bob", "assistant", title="bob's")
    assert [s.id for s in await store.list_sessions("alice")] == [a.id]
    assert (await store.list_sessions("alice", query="zebra"))[0].message_count == 2
    assert (await store.get_session(a.id)).title == "zebras"
    with pytest.raises(NotFoundError):
        await store.get_session(b.id, user_id="alice")
    await store.delete_session(a.id, "alice")
    assert await store.list_sessions("alice") == []
    with pytest.raises(NotFoundError):
        await store.get_session(a.id, user_id="alice")
    await store.restore_session(a.id, "alice")
    recent = await store.recent_messages(a.id, 1)
    assert [(m.content, m.status) for m in recent] == [("stripes", "interrupted")]
    assert (await store.last_session("alice")).id == a.id  # type: ignore[union-attr]
    await store.close()


WRITER = textwrap.dedent("""
    import asyncio, sys
    from cozy.storage.store import NewMessage, Store

    async def main(url, sid, tag, n):
        store = await Store.open(url)
        for i in range(n):
            await store.add_message(sid, NewMessage("user", f"{tag}-{i}"))
        await store.close()

    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
""")


async def test_two_processes_write_one_database(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    store = await Store.open(url(db))
    s = await store.create_session("u", "assistant")
    await store.close()
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, str(script), url(db), s.id, tag, "150", stderr=subprocess.PIPE
        )
        for tag in ("tui", "server")
    ]
    for p in procs:
        _, err = await asyncio.wait_for(p.communicate(), 120)
        assert p.returncode == 0, err.decode()
    store = await Store.open(url(db))
    contents = [m.content for m in await store.list_messages(s.id)]
    assert len(contents) == 300
    assert {c.split("-")[0] for c in contents} == {"tui", "server"}
    await store.close()


async def test_locked_database_waits_and_retries(tmp_path: Path) -> None:
    db = tmp_path / "locked.db"
    store = await Store.open(url(db), busy_timeout_ms=200)
    s = await store.create_session("u", "assistant")
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("begin immediate")  # another process holds the write lock

    async def release_later() -> None:
        await asyncio.sleep(0.5)
        holder.execute("commit")

    releaser = asyncio.create_task(release_later())
    await store.add_message(s.id, NewMessage("user", "waited"))  # outlives busy_timeout, retried
    await releaser
    holder.close()
    assert [m.content for m in await store.list_messages(s.id)] == ["waited"]
    await store.close()


def test_ids_keep_their_order_when_the_clock_steps_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """Messages are ordered by id: a wall clock stepped back (NTP) must not reorder them."""
    from types import SimpleNamespace

    from cozy.storage import schema

    clock = [1_800_000_000.0]
    monkeypatch.setattr(schema, "time", SimpleNamespace(time=lambda: clock[0]))
    ids = [schema.new_id("msg")]
    clock[0] -= 5.0  # the clock jumps back five seconds
    ids += [schema.new_id("msg"), schema.new_id("msg")]
    clock[0] += 10.0
    ids.append(schema.new_id("msg"))
    assert ids == sorted(ids) and len(set(ids)) == 4
