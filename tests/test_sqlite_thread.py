"""SQLite transactions in one worker-thread hop: same results, same atomicity, safe fallback."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from cozy.storage.job_queue import JobQueue
from cozy.storage.jobs import jobs
from cozy.storage.schema import messages
from cozy.storage.sqlite_thread import NeedsLoop, drive
from cozy.storage.store import NewMessage, Store


async def _open(tmp_path: Path) -> Store:
    return await Store.open(f"sqlite:///{tmp_path / 'cozy.db'}")


async def test_steps_that_only_use_the_connection_run_off_the_loop(tmp_path: Path) -> None:
    store = await _open(tmp_path)
    seen: list[str] = []
    try:
        s = await store.create_session("u1", "assistant")

        async def hook(conn: AsyncConnection) -> None:
            seen.append(threading.current_thread().name)
            n = (await conn.execute(sa.select(sa.func.count()).select_from(messages))).scalar()
            assert n == 2  # the step sees the rows of its own transaction
            await conn.execute(sa.insert(jobs).values(**_job_values("from-hook")))

        ids = await store.add_messages(
            s.id, [NewMessage("user", "hi"), NewMessage("assistant", "yo")], also=[hook]
        )
        assert seen and seen[0].startswith("cozy-sqlite")
        window_session, window = await store.session_window(s.id, "u1", 10)
        assert window_session.id == s.id and [m.id for m in window] == ids
        assert [j.kind for j in await JobQueue(store).list()] == ["from-hook"]
    finally:
        await store.close()


async def test_a_step_that_needs_the_loop_falls_back_and_commits_once(tmp_path: Path) -> None:
    store = await _open(tmp_path)
    threads: list[str] = []
    try:
        s = await store.create_session("u1", "assistant")

        async def hook(conn: AsyncConnection) -> None:
            threads.append(threading.current_thread().name)
            await conn.execute(sa.insert(jobs).values(**_job_values(f"slow-{len(threads)}")))
            await asyncio.sleep(0.001)  # needs a running loop: cannot finish in the thread

        await store.add_messages(s.id, [NewMessage("user", "hi")], also=[hook])
        # tried in the thread, rolled back, then run on the loop: one message, one job
        assert threads[0].startswith("cozy-sqlite") and len(threads) == 2
        assert threads[1] == threading.current_thread().name
        assert len(await store.list_messages(s.id)) == 1
        assert [j.kind for j in await JobQueue(store).list()] == ["slow-2"]
    finally:
        await store.close()


async def test_a_failing_step_rolls_the_whole_transaction_back(tmp_path: Path) -> None:
    store = await _open(tmp_path)
    try:
        s = await store.create_session("u1", "assistant")

        async def broken(conn: AsyncConnection) -> None:
            await conn.execute(sa.insert(jobs).values(**_job_values("lost")))
            raise ValueError("hook failed")

        with pytest.raises(ValueError, match="hook failed"):
            await store.add_messages(s.id, [NewMessage("user", "hi")], also=[broken])
        assert await store.list_messages(s.id) == []
        assert await JobQueue(store).list() == []
    finally:
        await store.close()


def test_drive_refuses_a_coroutine_that_suspends() -> None:
    async def plain() -> int:
        return 7

    async def suspends() -> None:
        await asyncio.sleep(0)

    assert drive(plain()) == 7
    with pytest.raises(NeedsLoop):
        drive(suspends())


def _job_values(kind: str) -> dict[str, Any]:
    return {
        "id": f"job-{kind}",
        "kind": kind,
        "payload": {},
        "status": "pending",
        "attempts": 0,
        "max_attempts": 1,
        "run_after": 0.0,
        "created_at": 0.0,
        "updated_at": 0.0,
    }
