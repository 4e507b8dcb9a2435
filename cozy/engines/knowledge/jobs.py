"""Ingestion as durable background jobs: `knowledge.ingest` and `knowledge.embed`.

`knowledge.embed` computes the vectors of a collection's chunks that have none yet
(`KnowledgeParts.embed_pending`): ingestion writes chunks first, so a document is
keyword-searchable at once and gains vectors as this job goes. A run works for at most
`EMBED_RUN_SECONDS` and then queues its own continuation, so no single run meets the
worker's job timeout; every batch it commits stays done if it is cut short.

The TUI and the server must not walk and index a big tree on the request path, so
`KnowledgeParts.queue_ingest` (and `add_knowledge` called with a path and no text)
writes a job into the jobs outbox and returns its id; a worker (`cozy serve`, the
TUI, or `cozy jobs run`) runs it. The job is safe to run more than once: ingestion
is keyed by content hash, each batch of documents commits whole, so a re-run after a
crash skips what was already written and finishes the rest. The job's payload gets
a `result` (counts and failed files) when it finishes. The CLI (`cozy knowledge
add`) ingests directly with its progress bar instead.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from cozy.core.errors import UsageError
from cozy.engines.capabilities import BackgroundJobs
from cozy.engines.knowledge.parts import KnowledgeParts, check_collection
from cozy.storage.jobs import Job, enqueue, jobs
from cozy.storage.schema import utcnow
from cozy.storage.worker import PermanentJobError

KIND = "knowledge.ingest"
KIND_EMBED = "knowledge.embed"
MAX_FAILED_LISTED = 50
EMBED_RUN_SECONDS = 120.0  # well under the worker's job timeout (300 s)


def resolve_paths(paths: Sequence[str | Path]) -> list[str]:
    """Absolute paths (the job may run in another process with another cwd)."""
    out: list[str] = []
    for raw in paths:
        text = str(raw).strip()
        if not text:
            raise UsageError("an empty path was given", hint="pass a file or directory path")
        path = Path(text).expanduser()
        if not path.exists() and not path.is_symlink():
            raise UsageError(
                f"no such file or directory: {text}",
                hint="give a path that exists on the machine that runs cozy",
            )
        out.append(str(path.resolve()))
    if not out:
        raise UsageError("no path to ingest", hint="pass at least one file or directory")
    return list(dict.fromkeys(out))


def job_key(user_id: str, collection: str, paths: Sequence[str]) -> str:
    digest = hashlib.sha1(json.dumps(sorted(paths)).encode()).hexdigest()[:20]
    return f"{KIND}:{user_id}:{collection}:{digest}"


class KnowledgeJobs(BackgroundJobs):
    """What the runtime wires for the knowledge engine: no turn hook (a turn queues
    nothing here) and the `knowledge.ingest` handler."""

    def __init__(self, engine: KnowledgeParts) -> None:
        self.engine = engine

    def handlers(self) -> dict[str, Any]:
        return {KIND: self.ingest, KIND_EMBED: self.embed}

    async def embed(self, payload: dict[str, Any], job: Job) -> None:
        user_id = payload.get("user_id") or job.user_id
        collection = payload.get("collection")
        if not isinstance(user_id, str) or not isinstance(collection, str):
            raise PermanentJobError(f"bad {KIND_EMBED} payload: needs user_id and collection")
        left = await self.engine.embed_pending(user_id, collection, budget=EMBED_RUN_SECONDS)
        if left:  # this run's time is up: the rest in a fresh job (this one is running)
            await queue_embed(self.engine, user_id, collection)

    async def ingest(self, payload: dict[str, Any], job: Job) -> None:
        paths = payload.get("paths")
        user_id = payload.get("user_id") or job.user_id
        collection = payload.get("collection")
        if (
            not isinstance(paths, list)
            or not paths
            or not all(isinstance(p, str) for p in paths)
            or not isinstance(user_id, str)
            or not isinstance(collection, str)
        ):
            raise PermanentJobError(f"bad {KIND} payload: needs paths, user_id and collection")
        try:
            report = await self.engine.add_paths(
                paths,
                user_id=user_id,
                collection=collection,
                embed=bool(payload.get("embed", True)),
                wait=False,  # vectors in their own job: the documents are searchable now
            )
        except UsageError as exc:  # e.g. an invalid collection name: retrying cannot help
            raise PermanentJobError(str(exc)) from exc
        failed = [r.to_dict() for r in report.results if r.status == "failed"]
        result = {
            "counts": report.counts(),
            "failed": failed[:MAX_FAILED_LISTED],
            "notes": report.notes,
            "pending_vectors": report.pending_vectors,
            "embed_job": report.embed_job,
            "finished_at": utcnow(),
        }
        await self._record(job.id, {**payload, "result": result})

    async def _record(self, job_id: str, payload: dict[str, Any]) -> None:
        store = self.engine.ctx.store
        if store is None:
            return

        async def write(conn: AsyncConnection) -> None:
            await conn.execute(sa.update(jobs).where(jobs.c.id == job_id).values(payload=payload))

        await store.write(write)


async def queue_ingest(
    engine: KnowledgeParts,
    paths: Sequence[str | Path],
    *,
    user_id: str,
    collection: str,
    embed: bool = True,
) -> str:
    """Queue a durable `knowledge.ingest` job; returns the job id. The same paths queued
    again while the first job is still pending reuse that job."""
    check_collection(collection)
    resolved = resolve_paths(paths)
    payload = {"paths": resolved, "user_id": user_id, "collection": collection, "embed": embed}
    key = job_key(user_id, collection, resolved)
    return await _queue(engine, KIND, payload, key, "ingestion", merge=lambda _old: payload)


async def queue_embed(engine: KnowledgeParts, user_id: str, collection: str) -> str:
    """Queue the collection's `knowledge.embed` job (one pending job per collection)."""
    payload = {"user_id": user_id, "collection": collection}
    key = f"{KIND_EMBED}:{user_id}:{collection}"
    return await _queue(engine, KIND_EMBED, payload, key, "embedding")


async def _queue(
    engine: KnowledgeParts,
    kind: str,
    payload: dict[str, Any],
    key: str,
    what: str,
    merge: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> str:
    """Enqueue the job (one pending job per `key`) and wake this process's worker."""
    store = engine.ctx.store
    if store is None:
        raise UsageError(f"background {what} needs a store", hint="open cozy via Runtime")

    async def write(conn: AsyncConnection) -> str:
        return await enqueue(
            conn,
            kind,
            payload,
            user_id=payload["user_id"],
            key=key,
            max_attempts=10,  # a run cut by the job timeout resumes where it stopped
            merge=merge,
        )

    job_id: str = await store.write(write)
    if engine.ctx.wake_worker is not None:
        engine.ctx.wake_worker()
    return job_id
