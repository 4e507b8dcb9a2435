"""`/knowledge add PATH... [-c COLLECTION]`: ingest from the chat as a durable job.

The knowledge engine queues a `knowledge.ingest` job (the same one the server's
`POST /v1/knowledge/{collection}/documents` queues); the app's job worker runs it
while the chat stays usable, and a notice reports the outcome. Closing the app
before it finishes loses nothing: the job runs in the next cozy process
(`cozy jobs run`, another `cozy chat`, or `cozy serve`).
"""

from __future__ import annotations

import asyncio
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cozy.tui.host import Host

USAGE = "usage: /knowledge add PATH... [-c COLLECTION]   (or /knowledge to browse)"
POLL_S = 0.5


@dataclass(slots=True)
class IngestRequest:
    paths: list[str]
    collection: str


def parse_ingest(arg: str) -> IngestRequest | str:
    """The request, or the message that says what is wrong."""
    try:
        words = shlex.split(arg)
    except ValueError as exc:
        return f"{exc}: {USAGE}"
    if not words or words[0] != "add":
        return USAGE
    paths: list[str] = []
    collection = "default"
    rest = iter(words[1:])
    for word in rest:
        if word in ("-c", "--collection"):
            collection = next(rest, "")
            if not collection:
                return f"{word} needs a collection name: {USAGE}"
        else:
            paths.append(word)
    if not paths:
        return f"no path given: {USAGE}"
    return IngestRequest(paths, collection)


class KnowledgeIngest:
    """`/knowledge add`: queue the job, then toast its outcome and when vectors are ready."""

    def __init__(self, host: Host) -> None:
        self.host = host

    async def command(self, arg: str) -> None:
        from cozy.core.errors import CozyError

        host = self.host
        request = parse_ingest(arg)
        if isinstance(request, str):
            host.notify(request, severity="warning")
            return
        try:
            job_id = await host.runtime.queue_ingest(
                request.paths, user_id=host.settings.user, collection=request.collection
            )
        except CozyError as exc:
            hint = f" ({exc.hint})" if getattr(exc, "hint", None) else ""
            host.notify(f"{exc}{hint}", severity="error")
            return
        host.notify(
            f"indexing {len(request.paths)} path(s) into '{request.collection}' in the "
            f"background (job {job_id[:8]}); keep chatting"
        )
        host.run_worker(self._watch_ingest(job_id), group="ingest")

    async def _watch_ingest(self, job_id: str) -> None:
        from cozy.core.errors import CozyError

        while True:
            await asyncio.sleep(POLL_S)
            try:
                job = await self.host.runtime.jobs.get(job_id)
            except CozyError:
                return  # the store is closing with the app
            if job.status in ("done", "failed"):
                break
        result = job.payload.get("result") or {}
        counts = result.get("counts") or {}
        summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n) or "nothing to do"
        failed = result.get("failed") or []
        pending = int(result.get("pending_vectors") or 0)
        if pending:  # keyword-searchable now; the knowledge.embed job adds the vectors
            summary += f"; {pending} chunks being embedded in the background"
        if job.status == "done" and not failed:
            self.host.notify(f"knowledge '{job.payload.get('collection')}': {summary}")
        elif job.status == "done":
            first = failed[0]
            self.host.notify(
                f"knowledge '{job.payload.get('collection')}': {summary}; "
                f"first failure: {first.get('path')}: {first.get('detail')}",
                severity="warning",
            )
        else:
            self.host.notify(f"knowledge ingest failed: {job.last_error}", severity="error")
        embed_job = result.get("embed_job")
        if isinstance(embed_job, str):
            await self._watch_vectors(embed_job, str(job.payload.get("collection")))

    async def _watch_vectors(self, job_id: str, collection: str) -> None:
        """Say when the collection's vectors are done (its embed job may hand over to a
        continuation: the collection's pending count is what decides)."""
        from cozy.core.errors import CozyError
        from cozy.engines.capabilities import ManagesDocuments

        engine = self.host.runtime.engines.get("knowledge")
        while isinstance(engine, ManagesDocuments):  # the capability, not a provider class
            await asyncio.sleep(POLL_S * 4)
            try:
                coll = (await engine.stats(user_id=self.host.settings.user)).get(collection) or {}
            except CozyError:
                return  # the store is closing with the app
            if not coll.get("pending_vectors"):
                self.host.notify(f"knowledge '{collection}': vectors ready (hybrid search)")
                return
