"""Durable jobs: queued in the answer's transaction, leases, backoff, kill -9 survival."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import sqlalchemy as sa
from helpers import collect, opened, req, running, write_engines
from sqlalchemy.ext.asyncio import AsyncConnection
from typer.testing import CliRunner

from cozy.core.events import Done, Failed
from cozy.engines.capabilities import SavedTurn, TurnHook
from cozy.runtime import Runtime
from cozy.settings import Settings
from cozy.storage.job_queue import JobQueue, backoff
from cozy.storage.schema import messages
from cozy.storage.store import Store
from cozy.storage.worker import JobWorker, PermanentJobError
from cozy.testing import FakeModelServer


def mem_yaml(fake: FakeModelServer) -> str:
    return (
        "memory: {provider: local, timeout: 5}\nprofile: {provider: none}\n"
        f"embed: {{provider: openai, base_url: '{fake.url}/v1', model: fake-embed, api_key: t}}\n"
    )


async def test_outbox_is_written_with_the_messages(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    async with running(cozy_home, fake_model.url, mem_yaml(fake_model)) as rt:
        events = await collect(rt.orchestrator.run(req("remember that I like chess")))
        done = events[-1]
        assert isinstance(done, Done)
        jobs = await rt.jobs.list()
        assert sorted(j.kind for j in jobs) == ["memory.extract", "memory.turns"]
        assert all(j.status == "pending" and j.user_id == "local" for j in jobs)
        assert all(j.payload["message_ids"] == [done.message_id] for j in jobs)
        sid = done.session_id

        # every hook hears the turn twice: inside the answer's transaction (the answer is
        # there, not yet committed), then once it is committed
        heard = Heard(rt.store)
        rt.orchestrator.writer.hooks.append(heard)
        events = await collect(rt.orchestrator.run(req("I play the violin", session=sid)))
        answer = events[-1]
        assert isinstance(answer, Done)
        asked = (await rt.store.list_messages(sid))[-2]
        assert asked.role == "user" and asked.content == "I play the violin"
        saved = SavedTurn("local", sid, "assistant", (asked.id, str(answer.message_id)))
        assert heard.told == [("in", saved, True), ("committed", saved, True)]

        # a failing hook rolls the answer back too, with every job queued beside it
        rt.orchestrator.writer.hooks.append(Broken())
        before = await rt.store.list_messages(sid)
        queued = [(j.id, j.payload) for j in await rt.jobs.list()]
        events = await collect(rt.orchestrator.run(req("and the cello", session=sid)))
        assert isinstance(events[-1], Failed)
        after = await rt.store.list_messages(sid)
        assert [m.role for m in after[len(before) :]] == ["user"]  # the question only
        assert [(j.id, j.payload) for j in await rt.jobs.list()] == queued
        assert [t[0] for t in heard.told[2:]] == ["in"]  # rolled back: never committed


class Heard(TurnHook):
    """Records what it is told, and whether the answer is there at that moment: in the
    transaction's own view, then in a fresh read once committed."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.told: list[tuple[str, SavedTurn, bool]] = []

    async def in_transaction(self, conn: AsyncConnection, saved: SavedTurn) -> None:
        found = await conn.scalar(_ANSWER, {"mid": saved.message_ids[1]})
        self.told.append(("in", saved, found is not None))

    async def committed(self, saved: SavedTurn) -> None:
        found = await self.store.read(_ANSWER, {"mid": saved.message_ids[1]})
        self.told.append(("committed", saved, bool(found)))


_ANSWER = sa.select(messages.c.id).where(messages.c.id == sa.bindparam("mid"))


class Broken(TurnHook):
    async def in_transaction(self, conn: AsyncConnection, saved: SavedTurn) -> None:
        raise RuntimeError("queueing failed")


async def test_claim_lease_fencing_retry_and_backoff(cozy_home: Path) -> None:
    store = await Store.open(f"sqlite:///{cozy_home / 'jobs.db'}")
    try:
        q = JobQueue(store)
        a = await q.enqueue("t.ok", {"n": 1})
        b = await q.enqueue("t.ok", {"n": 2})
        later = await q.enqueue("t.ok", {"n": 3}, delay=3600)
        j1 = await q.claim("w1", lease=30)
        j2 = await q.claim("w2", lease=30)
        assert j1 and j2 and {j1.id, j2.id} == {a, b}  # two workers never share a job
        assert await q.claim("w3") is None  # the third is deferred
        assert (await q.claim("w3", include_deferred=True)).id == later  # type: ignore[union-attr]
        # an expired lease is taken over; the old holder can no longer complete it
        stolen = await q.claim("w9", now=time.time() + 31)
        assert stolen is not None and stolen.id == j1.id and stolen.attempts == 2
        assert not await q.complete(j1, "w1")
        assert await q.complete(stolen, "w9")
        # failures back off, then park as failed; retry re-queues with fresh attempts
        f = await q.enqueue("t.bad", {}, max_attempts=2)
        job = await q.claim("w1", kinds=["t.bad"])
        assert await q.fail(job, "w1", "boom") == "pending"  # type: ignore[arg-type]
        again = await q.get(f)
        assert again.run_after >= time.time() + backoff(1) - 1
        job = await q.claim("w1", kinds=["t.bad"], now=again.run_after + 0.01)
        assert await q.fail(job, "w1", "boom 2") == "failed"  # type: ignore[arg-type]
        parked = await q.get(f)
        assert parked.status == "failed" and parked.last_error == "boom 2"
        assert (await q.retry(f)).status == "pending"
        assert backoff(1) < backoff(2) < backoff(3) <= 300
    finally:
        await store.close()


async def test_worker_runs_retries_and_gives_up(cozy_home: Path) -> None:
    store = await Store.open(f"sqlite:///{cozy_home / 'jobs.db'}")
    try:
        q = JobQueue(store)
        seen: list[int] = []
        calls = {"flaky": 0}

        async def ok(payload: dict[str, object], job: object) -> None:
            seen.append(int(payload["n"]))  # type: ignore[call-overload]

        async def flaky(payload: dict[str, object], job: object) -> None:
            calls["flaky"] += 1
            raise ConnectionError("model down")

        async def bad(payload: dict[str, object], job: object) -> None:
            raise PermanentJobError("payload is nonsense")

        worker = JobWorker(q, {"ok": ok, "flaky": flaky, "bad": bad}, poll_interval=0.05)
        for n in range(3):
            await q.enqueue("ok", {"n": n})
        await q.enqueue("flaky", {})
        await q.enqueue("bad", {})
        await q.enqueue("unknown.kind", {})  # no handler here: left for another process
        stats = await worker.drain()
        assert sorted(seen) == [0, 1, 2] and stats.done == 3
        assert stats.failed == 1 and stats.retried == 1 and calls["flaky"] == 1
        counts = await q.counts()
        assert counts == {"pending": 2, "running": 0, "done": 3, "failed": 1}
        # the background loop picks up new work when notified
        worker.start()
        await q.enqueue("ok", {"n": 7})
        worker.notify()
        for _ in range(1500):  # up to ~30 s on a loaded machine
            if 7 in seen:
                break
            await asyncio.sleep(0.02)
        await worker.stop()
        assert 7 in seen and not worker.running
    finally:
        await store.close()


CHILD = textwrap.dedent(
    """
    import asyncio, sys, time
    from pathlib import Path
    from cozy.core.orchestrator import ChatRequest
    from cozy.runtime import Runtime
    from cozy.settings import Settings

    async def main(home, mode):
        rt = await Runtime.open(Settings(home=Path(home)))
        if mode == "after-commit":
            async for event in rt.orchestrator.run(ChatRequest("I keep bees on my roof")):
                pass
            print("COMMITTED", flush=True)
        else:  # mid-job: claim a job with a short lease and hang inside the model call
            rt.worker.lease = 1.0
            print("WORKING", flush=True)
            await rt.drain_jobs()
        time.sleep(3600)

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


def _spawn(home: Path, mode: str) -> subprocess.Popen[str]:
    env = {**os.environ, "COZY_HOME": str(home)}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(home), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )


def _wait_line(proc: subprocess.Popen[str], marker: str, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    assert proc.stdout is not None
    while time.time() < deadline:
        line = proc.stdout.readline()
        if marker in line:
            return
        if not line and proc.poll() is not None:
            raise AssertionError(f"child exited {proc.returncode} before {marker}")
    raise AssertionError(f"no {marker} from child")


async def test_jobs_survive_kill_9(cozy_home: Path, fake_model: FakeModelServer) -> None:
    write_engines(cozy_home, fake_model.url, mem_yaml(fake_model))
    fake_model.add_rule(
        user_contains="New conversation",
        json={"operations": [{"op": "add", "text": "The user keeps bees on their roof"}]},
    )
    # 1. killed right after the turn committed: the jobs wait in the outbox
    child = _spawn(cozy_home, "after-commit")
    try:
        _wait_line(child, "COMMITTED")
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    rt = await Runtime.open(Settings(home=cozy_home))
    try:
        assert (await rt.jobs.counts())["pending"] == 2
    finally:
        await rt.close()
    # 2. a worker killed in the middle of a job: its lease runs out, the next one takes over
    fake_model.latency = 30.0
    child = _spawn(cozy_home, "mid-job")
    try:
        _wait_line(child, "WORKING")
        store = await Store.open(f"sqlite:///{cozy_home / 'cozy.db'}")
        try:
            q = JobQueue(store)
            for _ in range(1200):  # up to ~60 s: the child claims the job on its own time
                if (await q.counts())["running"]:
                    break
                await asyncio.sleep(0.05)
            assert (await q.counts())["running"] == 1
        finally:
            await store.close()
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    fake_model.latency = 0.0
    async with opened(Settings(home=cozy_home)) as rt:
        running = await rt.jobs.list(status="running")
        assert len(running) == 1 and running[0].locked_until is not None
        await asyncio.sleep(max(0.0, running[0].locked_until - time.time()) + 0.1)
        stats = await rt.drain_jobs()
        assert stats.failed == 0 and stats.done >= 1
        assert (await rt.jobs.counts())["pending"] == 0
        retaken = await rt.jobs.get(running[0].id)
        assert retaken.status == "done" and retaken.attempts == 2
        facts = await rt.engines["memory"].list_memories("local")  # type: ignore[attr-defined]
        assert [f.text for f in facts] == ["The user keeps bees on their roof"]


def test_cli_jobs_list_run_retry(cozy_home: Path, fake_model: FakeModelServer) -> None:
    from cozy.cli._common import state
    from cozy.cli.app import app

    state._settings = None  # settings are cached per process: this test has its own home

    write_engines(cozy_home, fake_model.url, mem_yaml(fake_model))
    runner = CliRunner()
    out = runner.invoke(app, ["run", "I collect stamps"])
    assert out.exit_code == 0, out.output
    listed = runner.invoke(app, ["jobs", "list", "--json"])
    assert listed.exit_code == 0 and '"pending": 2' in listed.output
    fake_model.add_rule(user_contains="New conversation", json={"operations": []})
    ran = runner.invoke(app, ["jobs", "run"])
    assert ran.exit_code == 0 and "done 2" in ran.output
    bad = runner.invoke(app, ["jobs", "retry", "job_nope"])
    assert bad.exit_code == 2 and "cozy jobs list" in bad.output
    wrong = runner.invoke(app, ["jobs", "list", "--status", "weird"])
    assert wrong.exit_code == 2
