"""Knowledge routes: add a document to a collection, or queue a path for ingestion.

`POST /v1/knowledge/{collection}/documents` with `{"text": ..., "source": ...}` indexes
the text now (201, the document id). With `{"paths": [...]}` (admins only: the paths
are on the server's disk) it queues a durable `knowledge.ingest` job and answers 202
with the job; `GET /v1/knowledge/jobs/{id}` shows its status and, when done, its
per-file result.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.params import JSONBody
from msgspec import Meta

from cozy.core.errors import NotFoundError, UsageError
from cozy.server.auth import require_admin
from cozy.server.deps import PathStr, PrincipalDep, services

MAX_TEXT = 8 * 1024 * 1024


class DocumentIn(msgspec.Struct, kw_only=True):
    text: Annotated[str, Meta(max_length=MAX_TEXT)] | None = None
    source: Annotated[str, Meta(max_length=1000)] = ""
    metadata: dict[str, Any] | None = None
    paths: Annotated[list[Annotated[str, Meta(max_length=4096)]], Meta(max_length=100)] | None = (
        None
    )
    embed: bool = True


class KnowledgeController(Controller):
    path = "/v1/knowledge"
    tags = ("knowledge",)

    @post("/{collection:str}/documents", status_code=201, summary="Add a document or a path")
    async def add_document(
        self,
        request: Request[Any, Any, Any],
        principal: PrincipalDep,
        collection: PathStr,
        data: JSONBody[DocumentIn],
    ) -> Any:
        from litestar import Response

        if data.paths:
            if data.text:
                raise UsageError("send either text or paths, not both")
            require_admin(principal)  # the paths are read on the server's disk
            rt = services(request).runtime
            job_id = await rt.queue_ingest(
                data.paths, user_id=principal.user_id, collection=collection, embed=data.embed
            )
            job = await rt.jobs.get(job_id)
            return Response(_job(job), status_code=202)
        engine = await services(request).runtime.knowledge()
        if not data.text or not data.text.strip():
            raise UsageError(
                "the document has no text", hint='send {"text": "..."} or {"paths": [...]}'
            )
        doc_id = await engine.add_knowledge(
            data.text,
            user_id=principal.user_id,
            collection=collection,
            source=data.source,
            metadata=data.metadata,
        )
        return {"object": "knowledge.document", "id": doc_id, "collection": collection}

    @get("/jobs/{job_id:str}", summary="Status of a knowledge ingestion job")
    async def get_job(
        self, request: Request[Any, Any, Any], principal: PrincipalDep, job_id: PathStr
    ) -> dict[str, Any]:
        job = await services(request).runtime.jobs.get(job_id)
        if not job.kind.startswith("knowledge.") or (
            job.user_id != principal.user_id and principal.role != "admin"
        ):
            raise NotFoundError(f"no knowledge job '{job_id}'", hint="use the id POST returned")
        return _job(job)


def _job(job: Any) -> dict[str, Any]:
    payload = dict(job.payload or {})
    return {
        "object": "knowledge.job",
        "id": job.id,
        "status": job.status,
        "collection": payload.get("collection"),
        "paths": payload.get("paths", []),
        "attempts": job.attempts,
        "last_error": job.last_error,
        "result": payload.get("result"),
        "status_url": f"/v1/knowledge/jobs/{job.id}",
    }
