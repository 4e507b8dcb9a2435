"""Ingestion as a durable background job (`knowledge.ingest`), from the engine and the server."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from helpers import open_runtime, running
from knowledge_files import integrity, knowledge, write
from server_fixtures import start_server

from cozy.core.errors import UsageError
from cozy.engines.knowledge.jobs import KIND
from cozy.testing import FakeModelServer

NO_EMBED = "knowledge: {provider: local, embed: false}\n"


def notes(root: Path, n: int = 12) -> Path:
    for i in range(n):
        write(root / f"sub{i % 3}" / f"note{i:02}.md", f"# Note {i}\n\nThe zebra {i} eats hay.\n")
    return root


async def test_add_knowledge_with_a_path_queues_a_job_that_survives_the_process(
    cozy_home: Path, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    tree = notes(tmp_path / "notes")
    rt = await open_runtime(cozy_home, fake_model.url, NO_EMBED)
    try:
        k = await knowledge(rt)
        job_id = await k.add_knowledge("", user_id="local", collection="farm", source=str(tree))
        again = await k.queue_ingest([tree / ".." / "notes"], user_id="local", collection="farm")
        assert job_id.startswith("job_") and again == job_id  # same paths, still pending: one job
        job = await rt.jobs.get(job_id)
        assert job.kind == KIND and job.status == "pending"
        assert job.payload["paths"] == [str(tree.resolve())]
        assert await k.list_documents(user_id="local") == []  # nothing on the request path
    finally:
        await rt.close()  # the process that queued the job goes away before it runs

    async with running(cozy_home, fake_model.url, NO_EMBED) as rt:
        stats = await rt.drain_jobs()
        assert stats.done == 1 and stats.failed == 0
        job = await rt.jobs.get(job_id)
        assert job.status == "done"
        assert job.payload["result"]["counts"] == {"added": 12}
        k = await knowledge(rt)
        assert len(await k.list_documents(user_id="local", collection="farm")) == 12
        hits = await k.search("zebra 7 hay", user_id="local", collections=["farm"], limit=1)
        assert hits and hits[0].metadata["path"].endswith("note07.md")


async def test_a_job_whose_worker_died_is_rerun_and_ends_complete(
    cozy_home: Path, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    tree = notes(tmp_path / "notes", 9)
    async with running(
        cozy_home, fake_model.url, "knowledge: {provider: local, embed: false, batch_files: 2}\n"
    ) as rt:
        k = await knowledge(rt)
        job_id = await k.queue_ingest([tree], user_id="local", collection="c")
        # a worker claims it, indexes part of the tree, then its process is killed
        claimed = await rt.jobs.claim("dead-worker", kinds=[KIND], lease=0.2)
        assert claimed is not None and claimed.id == job_id
        seen: list[str] = []

        def on_result(_r: object) -> None:
            seen.append("x")
            if len(seen) == 4:
                task.cancel()

        task = asyncio.ensure_future(
            k.add_paths([tree], user_id="local", collection="c", on_result=on_result)
        )
        with pytest.raises(asyncio.CancelledError):
            await task
        partial = await integrity(rt)
        assert 4 <= len(partial) < 9
        await asyncio.sleep(0.3)  # the dead worker's lease runs out
        stats = await rt.drain_jobs()
        assert stats.done == 1
        job = await rt.jobs.get(job_id)
        assert job.status == "done" and job.attempts == 2
        counts = job.payload["result"]["counts"]
        assert counts == {"unchanged": len(partial), "added": 9 - len(partial)}
        assert len(await integrity(rt)) == 9


async def test_bad_paths_and_payloads_fail_clearly(
    cozy_home: Path, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    async with running(cozy_home, fake_model.url, NO_EMBED) as rt:
        k = await knowledge(rt)
        with pytest.raises(UsageError, match="no such file or directory: /no/such/dir"):
            await k.add_knowledge("", user_id="local", source="/no/such/dir")
        with pytest.raises(UsageError, match="invalid collection"):
            await k.queue_ingest([tmp_path], user_id="local", collection="../etc")
        with pytest.raises(UsageError, match="empty"):
            await k.add_knowledge("  ", user_id="local")
        assert await rt.jobs.list() == []
        bad = await rt.jobs.enqueue(KIND, {"paths": "not-a-list"}, user_id="local")
        stats = await rt.drain_jobs()
        assert stats.failed == 1
        job = await rt.jobs.get(bad)
        assert (
            job.status == "failed"
            and job.attempts == 1
            and "bad knowledge.ingest" in str(job.last_error)
        )


def test_server_adds_text_and_queues_paths_for_admins(
    cozy_home: Path, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    tree = notes(tmp_path / "notes", 6)
    thread, served = start_server(cozy_home, fake_model, NO_EMBED)
    try:
        with httpx.Client(base_url=served.url, timeout=30) as c:
            url = "/v1/knowledge/work/documents"
            r = c.post(
                url,
                json={"text": "# Keys\n\nRotate signing keys every 90 days.", "source": "keys.md"},
                headers=served.headers("alice"),
            )
            assert r.status_code == 201, r.text
            assert r.json()["id"].startswith("kdoc_") and r.json()["collection"] == "work"
            bad = [
                ({"text": ""}, 400, "alice"),
                ({"paths": [str(tree)]}, 403, "alice"),  # paths on the server: admins only
                ({"paths": ["/no/such/dir"]}, 400, "root"),
                ({"text": "x", "paths": [str(tree)]}, 400, "root"),
                ({"text": 5}, 400, "alice"),
            ]
            for body, status, who in bad:
                r = c.post(url, json=body, headers=served.headers(who))
                assert r.status_code == status, (body, r.text)
                assert r.json()["error"]["message"]
            r = c.post(
                "/v1/knowledge/bad name/documents",
                json={"text": "hello"},
                headers=served.headers("alice"),
            )
            assert r.status_code == 400 and "collection" in r.json()["error"]["message"]
            r = c.post(url, json={"paths": [str(tree)]}, headers=served.headers("root"))
            assert r.status_code == 202, r.text
            job = r.json()
            assert job["object"] == "knowledge.job" and job["status"] in ("pending", "running")
            deadline = time.monotonic() + 30
            while job["status"] != "done" and time.monotonic() < deadline:
                time.sleep(0.1)  # the server's own worker runs the job
                job = c.get(job["status_url"], headers=served.headers("root")).json()
            assert job["status"] == "done", job
            assert job["result"]["counts"] == {"added": 6} and job["result"]["failed"] == []
            other = c.get(f"/v1/knowledge/jobs/{job['id']}", headers=served.headers("bob"))
            assert other.status_code == 404
    finally:
        thread.stop()
