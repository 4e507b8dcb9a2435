"""Incremental ingestion of files into one collection, keyed by content hash.

Plan first (walk, stat, hash), then act: unchanged files are skipped, renamed files
are moved without re-reading, changed and new files are loaded, chunked and written
(keyword-searchable from then on), and files that disappeared from a walked directory
are removed. Vectors: a chunk whose text is unchanged keeps its vector; the others are
embedded here, or with `defer` left to `LocalKnowledge.embed_pending` (a background
job), so a document never waits for the embedder to become searchable. A failure on one file is
reported and the others go on; an interrupted run leaves every document either in
its old or its new version.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cozy.core.errors import CozyError
from cozy.engines.knowledge.chunking import text_hash
from cozy.engines.knowledge.extract import Extracted, extract_file
from cozy.engines.knowledge.index import DocRow, KnowledgeIndex, NewDocument
from cozy.engines.knowledge.textio import LoadError, sha256_file
from cozy.engines.knowledge.walk import FileResult, Walk, iter_sizes, under, walk

if TYPE_CHECKING:
    from cozy.engines.base import EmbedEngine

OnPlan = Callable[[int, int], None]  # files, bytes
OnResult = Callable[[FileResult], None]
OnVectors = Callable[[int, int], None]  # chunks embedded so far, chunks to embed


@dataclass(slots=True)
class IngestReport:
    collection: str
    results: list[FileResult] = field(default_factory=list)
    embedder: str | None = None
    notes: list[str] = field(default_factory=list)
    pending_vectors: int = 0  # chunks still without a vector when the run returned
    embed_job: str | None = None  # the background job computing them

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.results:
            out[r.status] = out.get(r.status, 0) + 1
        return out

    @property
    def failed(self) -> bool:
        return any(r.status == "failed" for r in self.results)

    def to_dict(self) -> dict[str, object]:
        return {
            "collection": self.collection,
            "counts": self.counts(),
            "embedder": self.embedder,
            "notes": self.notes,
            "pending_vectors": self.pending_vectors,
            "embed_job": self.embed_job,
            "files": [r.to_dict() for r in self.results],
        }


@dataclass(slots=True)
class Settings:
    chunk_tokens: int = 200
    chunk_overlap: int = 30
    max_file_bytes: int = 64 * 1024 * 1024
    include_hidden: bool = False
    embed_batch: int = 32
    batch_bytes: int = 2 * 1024 * 1024  # documents written per transaction, by size...
    batch_files: int = 200  # ...by count...
    batch_seconds: float = 1.0  # ...and by age, so progress never stalls long


@dataclass(slots=True)
class Pending:
    """A loaded document waiting for its batch's transaction."""

    doc: NewDocument
    existing: DocRow | None
    result: FileResult


def _vanished(existing: dict[str, DocRow], found: Walk) -> dict[str, list[DocRow]]:
    """Documents under a walked directory whose file is gone, by content hash."""
    out: dict[str, list[DocRow]] = {}
    for path, d in existing.items():
        walked = under(path, found.roots) and not under(path, found.unreadable)
        if walked and not os.path.exists(path):
            out.setdefault(d.content_hash, []).append(d)
    return out


def vectors_to_bytes(vectors: Sequence[Sequence[float]]) -> list[bytes]:
    import numpy as np

    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim != 2:
        return []
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    arr = (arr / np.where(norms == 0, 1, norms)).astype(np.float32)
    return [row.tobytes() for row in arr]


class Ingestor:
    def __init__(
        self,
        index: KnowledgeIndex,
        *,
        user_id: str,
        collection: str,
        embedder: EmbedEngine | None,
        embed_model: str | None,
        settings: Settings,
        defer: bool = False,
    ) -> None:
        self.index = index
        self.defer = defer  # write chunks without new vectors (embed_pending adds them)
        self.user_id = user_id
        self.collection = collection
        self.embedder = embedder
        self.embed_model = embed_model
        self.settings = settings

    async def embed(self, texts: Sequence[str]) -> list[bytes | None]:
        if self.embedder is None or not texts:
            return [None] * len(texts)
        out: list[bytes | None] = []
        step = self.settings.embed_batch
        for i in range(0, len(texts), step):
            out.extend(vectors_to_bytes(await self.embedder.embed(list(texts[i : i + step]))))
        return out

    async def run(
        self,
        paths: Sequence[Path | str],
        *,
        on_plan: OnPlan | None = None,
        on_result: OnResult | None = None,
    ) -> IngestReport:
        report = IngestReport(self.collection, embedder=self.embed_model)

        def emit(result: FileResult) -> None:
            report.results.append(result)
            if on_result is not None:
                on_result(result)

        found = await asyncio.to_thread(walk, paths, include_hidden=self.settings.include_hidden)
        sized = list(iter_sizes(found.files))
        if on_plan is not None:
            on_plan(len(sized) + len(found.problems), sum(s for _, s, _, _ in sized))
        for problem in found.problems:
            emit(problem)
        existing = {
            d.path: d
            for d in await self.index.list_documents(self.user_id, collection=self.collection)
        }
        # documents under a walked directory whose file is gone: removed, or renamed
        vanished = await asyncio.to_thread(_vanished, existing, found)
        batch = Batch(self.index, self.settings, emit)
        try:
            for path, size, mtime, error in sized:
                if error is not None:
                    emit(FileResult(str(path), "failed", error))
                    continue
                outcome = await self._one(path, size, mtime, existing.get(str(path)), vanished)
                if isinstance(outcome, Pending):
                    await batch.add(outcome)
                else:
                    emit(outcome)
            await batch.flush()
        finally:
            await batch.close()
        gone = [d for docs in vanished.values() for d in docs]
        if gone:
            await self.index.remove_documents(self.user_id, [d.id for d in gone])
            for d in gone:
                emit(FileResult(d.path, "removed", "file no longer exists", document_id=d.id))
        return report

    async def _one(
        self,
        path: Path,
        size: int,
        mtime: float | None,
        doc: DocRow | None,
        vanished: dict[str, list[DocRow]],
    ) -> FileResult | Pending:
        name = str(path)
        if size > self.settings.max_file_bytes:
            limit = self.settings.max_file_bytes / 1e6
            return FileResult(
                name,
                "skipped",
                f"too large ({size / 1e6:.1f} MB > {limit:g} MB; raise knowledge.max_file_mb)",
                size=size,
            )
        try:
            digest = await asyncio.to_thread(sha256_file, path)
        except OSError as exc:
            reason = "permission denied" if isinstance(exc, PermissionError) else exc.strerror
            return FileResult(name, "failed", str(reason or exc), size=size)
        if doc is not None and doc.content_hash == digest:
            filled = await self._backfill(doc)
            detail = f"{filled} vectors added" if filled else ""
            return FileResult(name, "unchanged", detail, doc.chunk_count, size, doc.id)
        candidates = vanished.get(digest) if doc is None else None
        moved = candidates.pop() if candidates else None
        if moved is not None:
            await self.index.move_document(self.user_id, moved.id, name, mtime)
            return FileResult(
                name, "renamed", f"from {moved.path}", moved.chunk_count, size, moved.id
            )
        try:
            extracted = await asyncio.to_thread(
                extract_file,
                path,
                target=self.settings.chunk_tokens,
                overlap=self.settings.chunk_overlap,
            )
        except LoadError as exc:
            return FileResult(name, "skipped" if exc.skipped else "failed", exc.reason, size=size)
        except PermissionError:
            return FileResult(name, "failed", "permission denied", size=size)
        except OSError as exc:
            return FileResult(name, "failed", exc.strerror or str(exc), size=size)
        if not extracted.chunks:
            if doc is not None:
                await self.index.remove_documents(self.user_id, [doc.id])
            return FileResult(name, "skipped", "no text to index (empty)", size=size)
        new = await self.prepare(name, extracted, digest, size, mtime, doc)
        status = "updated" if doc is not None else "added"
        return Pending(new, doc, FileResult(name, status, "", len(extracted.chunks), size))

    async def prepare(
        self,
        path: str,
        extracted: Extracted,
        digest: str,
        size: int,
        mtime: float | None,
        doc: DocRow | None,
        metadata: dict[str, object] | None = None,
    ) -> NewDocument:
        """The document's row and chunks, with vectors reused or freshly embedded."""
        reuse: dict[str, bytes] = {}
        models: list[str | None] | None = None
        if doc is not None and self.defer:  # keep any vector (embed_pending swaps models)
            known = await self.index.known_vectors_any(doc.id)
            reuse = {h: vec for h, (vec, _m) in known.items()}
            models = [known.get(text_hash(c.text), (b"", None))[1] for c in extracted.chunks]
        elif doc is not None and self.embed_model:
            reuse = await self.index.known_vectors(doc.id, self.embed_model)
        vectors = [reuse.get(text_hash(c.text)) if reuse else None for c in extracted.chunks]
        todo = [i for i, vec in enumerate(vectors) if vec is None]
        if todo and self.embedder is not None and not self.defer:
            fresh = await self.embed([extracted.chunks[i].embed_text for i in todo])
            for i, vec in zip(todo, fresh, strict=True):
                vectors[i] = vec
        return NewDocument(
            user_id=self.user_id,
            collection=self.collection,
            path=path,
            title=extracted.title or Path(path).name,
            kind=extracted.kind,
            content_hash=digest,
            size_bytes=size,
            mtime=mtime,
            chunks=extracted.chunks,
            vectors=vectors,
            embed_model=self.embed_model,
            metadata=dict(metadata or {}),
            models=models,
        )

    async def _backfill(self, doc: DocRow) -> int:
        if self.embedder is None or self.embed_model is None or self.defer:
            return 0
        missing = await self.index.unembedded(self.user_id, doc.id, self.embed_model)
        if not missing:
            return 0
        vectors = await self.embed([text for _, text in missing])
        items = [(cid, vec) for (cid, _), vec in zip(missing, vectors, strict=True) if vec]
        await self.index.set_vectors(self.user_id, items, self.embed_model)
        return len(items)


class Batch:
    """Documents written several per transaction: the FTS index is flushed once per
    batch instead of once per file. A batch commits whole or not at all, so every
    document is still either in its old or its new version; a batch that fails is
    retried one document at a time, so one bad write fails only its own file. A
    file's result is reported once its transaction has committed."""

    def __init__(self, index: KnowledgeIndex, settings: Settings, emit: OnResult) -> None:
        self.index = index
        self.settings = settings
        self.emit = emit
        self.items: list[Pending] = []
        self.bytes = 0
        self.started = 0.0

    async def add(self, item: Pending) -> None:
        if not self.items:
            self.started = time.monotonic()
        self.items.append(item)
        self.bytes += item.result.size
        s = self.settings
        if (
            self.bytes >= s.batch_bytes
            or len(self.items) >= s.batch_files
            or time.monotonic() - self.started >= s.batch_seconds
        ):
            await self.flush()

    async def flush(self) -> None:
        items, self.items, self.bytes = self.items, [], 0
        if not items:
            return
        try:
            ids = await self.index.write_documents([(p.doc, p.existing) for p in items])
        except CozyError as exc:
            if len(items) == 1:
                r = items[0].result
                self.emit(FileResult(r.path, "failed", f"not written: {exc}", size=r.size))
                return
            for item in items:  # isolate the document that cannot be written
                self.items = [item]
                await self.flush()
            return
        for item, doc_id in zip(items, ids, strict=True):
            item.result.document_id = doc_id
            self.emit(item.result)

    async def close(self) -> None:
        self.items = []  # interrupted: unwritten documents keep their previous version
