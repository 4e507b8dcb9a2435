"""Ingest that does not wait for the embedder: chunks are keyword-searchable when `add`
returns, vectors follow in a durable `knowledge.embed` job (or before return with `wait`),
and search says which chunks are keyword-only meanwhile."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from helpers import cozy, running, write_engines
from knowledge_files import pets_and_lunch

from cozy.engines.knowledge.provider import LocalKnowledge
from cozy.testing import FakeModelServer

EMBED = "embed: {provider: local}\n"


async def test_vectors_come_from_the_background_job(
    cozy_home: Path, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    docs = pets_and_lunch(tmp_path)
    async with running(cozy_home, fake_model.url, EMBED) as rt:
        k = await rt.engine("knowledge")
        assert isinstance(k, LocalKnowledge)
        report = await k.add_paths([docs], user_id="local", collection="c", wait=False)
        assert report.counts() == {"added": 2}
        assert report.pending_vectors == 2 and report.embed_job is not None
        assert k.embeddings.engine is None  # `add` did not wait for the model to load
        # keyword-searchable at once; the vector side (its model loaded now, as a chat
        # would have it) says what it cannot see yet
        assert await k.embedder() is not None
        hits = await k.search("canteen soup", user_id="local")
        assert hits and "soup" in hits[0].text
        assert any("2 of 2 chunks have no vector yet" in n for n in hits[0].metadata["notes"])
        stats = await k.stats(user_id="local")
        assert stats["c"]["pending_vectors"] == 2 and not stats["c"]["embedded"]
        job = await rt.jobs.get(report.embed_job)
        assert job.kind == "knowledge.embed" and job.status == "pending"
        # the worker runs the durable job
        ran = await rt.drain_jobs()
        assert ran.done >= 1 and not ran.failed
        assert (await rt.jobs.get(report.embed_job)).status == "done"
        stats = await k.stats(user_id="local")
        assert stats["c"]["pending_vectors"] == 0 and sum(stats["c"]["embedded"].values()) == 2
        vector = await k.search("puppy", user_id="local", mode="vector", limit=1)
        assert "Biscuit" in vector[0].text
        hybrid = await k.search("puppy", user_id="local")
        assert "notes" not in hybrid[0].metadata  # every chunk has its vector now
        # incremental: one file changes, only its chunk waits for a vector again
        (docs / "food.md").write_text("# Lunch\n\nThe canteen serves curry on Fridays.\n")
        again = await k.add_paths([docs], user_id="local", collection="c", wait=False)
        assert again.counts() == {"unchanged": 1, "updated": 1}
        assert again.pending_vectors == 1
        assert await k.embed_pending("local", "c") == 0
        assert (await k.stats(user_id="local"))["c"]["pending_vectors"] == 0


async def test_the_job_hands_over_when_its_time_is_up(
    cozy_home: Path, fake_model: FakeModelServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run out of time (after one batch) leaves the rest to a continuation job."""
    from cozy.engines.knowledge import backfill as backfill_mod
    from cozy.engines.knowledge import jobs as jobs_mod

    docs = pets_and_lunch(tmp_path)
    async with running(cozy_home, fake_model.url, EMBED) as rt:
        k = await rt.engine("knowledge")
        assert isinstance(k, LocalKnowledge)
        report = await k.add_paths([docs], user_id="local", collection="c", wait=False)
        monkeypatch.setattr(backfill_mod, "EMBED_BATCH", 1)
        monkeypatch.setattr(jobs_mod, "EMBED_RUN_SECONDS", -1.0)  # out of time at once
        assert report.embed_job is not None
        first = await rt.worker.run_one()
        assert first is not None and first[1] == "done"
        pending = [j for j in await rt.jobs.list(status="pending") if j.kind == "knowledge.embed"]
        assert len(pending) == 1 and pending[0].id != report.embed_job  # the continuation
        assert (await k.stats(user_id="local"))["c"]["pending_vectors"] == 1
        await rt.drain_jobs()
        assert (await k.stats(user_id="local"))["c"]["pending_vectors"] == 0
        assert not [j for j in await rt.jobs.list(status="pending")]


def _stats(home_env: dict[str, str]) -> dict[str, dict[str, object]]:
    r = cozy("knowledge", "stats", "--json", env=home_env)
    assert r.returncode == 0, r.stderr
    data: dict[str, dict[str, object]] = json.loads(r.stdout)
    return data


def test_cli_add_returns_before_the_vectors_and_wait_does_not(
    cozy_home: Path, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    write_engines(cozy_home, fake_model.url, EMBED)
    docs = pets_and_lunch(tmp_path)
    env: dict[str, str] = {}
    r = cozy("knowledge", "add", str(docs), "-c", "bg", timeout=120)
    assert r.returncode == 0, r.stderr
    assert "being embedded in the background" in r.stderr
    r = cozy("knowledge", "search", "canteen", "--json")
    assert r.returncode == 0 and "soup" in json.loads(r.stdout)[0]["text"]
    deadline = time.monotonic() + 120  # the detached `cozy knowledge embed` finishes
    while _stats(env)["bg"]["pending_vectors"] and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _stats(env)["bg"]["pending_vectors"] == 0
    log = cozy_home / "logs" / "knowledge-embed.log"
    assert log.is_file()
    r = cozy("knowledge", "add", str(docs), "-c", "now", "--wait", "--json", timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["pending_vectors"] == 0 and out["embed_job"] is None
    assert sum(_stats(env)["now"]["embedded"].values()) == 2  # type: ignore[union-attr]
    r = cozy("knowledge", "embed", "--json", timeout=120)
    assert r.returncode == 0 and json.loads(r.stdout) == {"embedded": 0, "pending": 0}
