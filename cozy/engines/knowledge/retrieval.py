"""Knowledge's side of retrieval: its vector matrices per user and model, chunk rows.

The index itself is the shared kernel (cozy/engines/retrieval/); keyword scope in keyword.py.

The vector matrix of a user is loaded once and reloaded only when the user's index
generation changes (one indexed lookup per search). Scores are fused with
reciprocal rank fusion, which needs no score calibration between the two lists.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from cozy.engines.knowledge.index import KnowledgeIndex
from cozy.engines.retrieval.vector_index import VectorIndex
from cozy.storage.tables.knowledge import chunks, documents

if TYPE_CHECKING:
    import numpy as np

RRF_K = 60
INLINE_FLOATS = 2_000_000  # smaller products run on the event loop, bigger in a thread


@dataclass(slots=True)
class Vectors:
    """One user's vectors for one model: the shared vector index (retrieval/vector_index.py)
    over rows sorted by collection, so a collection scope is a contiguous range of rows
    (no copy). A path prefix filter maps to document codes (one test per document)."""

    generation: int
    index: VectorIndex[int]  # chunk ids, unit vectors
    scopes: dict[str, tuple[int, int]]  # collection -> [start, end) rows
    doc_codes: np.ndarray  # document code per row
    doc_paths: list[str]  # path per document code
    chunks: dict[str, int] = field(default_factory=dict)  # collection -> chunks, with or without

    def without_vectors(self, collections: Sequence[str] | None) -> tuple[int, int]:
        """(chunks in scope without a vector yet, chunks in scope)."""
        names = set(collections) if collections else set(self.chunks)
        total = sum(self.chunks.get(c, 0) for c in names)
        have = sum(b - a for a, b in self.ranges(collections))
        return max(0, total - have), total

    def __len__(self) -> int:
        return len(self.index)

    def ranges(self, collections: Sequence[str] | None) -> list[tuple[int, int]]:
        if not collections:
            return [(0, len(self.index))] if len(self.index) else []
        return sorted(self.scopes[c] for c in set(collections) if c in self.scopes)

    def search(
        self,
        query: np.ndarray,
        *,
        collections: Sequence[str] | None,
        prefix: str | None,
        k: int,
    ) -> list[tuple[int, float]]:
        import numpy as np

        parts = self.ranges(collections)
        if not parts or k <= 0:
            return []
        keep = None
        if prefix:
            allowed = [i for i, p in enumerate(self.doc_paths) if p.startswith(prefix)]
            codes = np.concatenate([self.doc_codes[a:b] for a, b in parts])
            keep = np.isin(codes, np.asarray(allowed, dtype=np.int64))
        found = self.index.search(query, k, ranges=parts, keep=keep)
        return found

    async def search_async(
        self,
        query: np.ndarray,
        *,
        collections: Sequence[str] | None,
        prefix: str | None,
        k: int,
    ) -> list[tuple[int, float]]:
        """`search`, in a worker thread when the product is big and runs without the GIL
        (numpy's BLAS: it overlaps with the keyword query in SQLite's thread); numkong's
        kernels hold the GIL, so a thread would only add its hop (retrieval/vectors.py)."""
        from cozy.engines.retrieval.vectors import holds_gil

        size = sum(b - a for a, b in self.ranges(collections)) * self.index.matrix.shape[1]
        if size <= INLINE_FLOATS or holds_gil():
            return self.search(query, collections=collections, prefix=prefix, k=k)
        return await asyncio.to_thread(
            lambda: self.search(query, collections=collections, prefix=prefix, k=k)
        )

    def vector(self, chunk_id: int) -> np.ndarray | None:
        return self.index.vector(chunk_id)


class VectorCache:
    """Per (user, model) matrices, reloaded when the user's generation moves."""

    def __init__(self) -> None:
        self._items: dict[tuple[str, str], Vectors] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    def clear(self) -> None:
        self._items.clear()

    async def get(
        self, index: KnowledgeIndex, user_id: str, model: str, generation: int, dims: int
    ) -> Vectors:
        key = (user_id, model)
        cached = self._items.get(key)
        if cached is not None and cached.generation == generation:
            return cached
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._items.get(key)
            if cached is not None and cached.generation == generation:
                return cached
            loaded = await self._load(index, user_id, model, generation, dims)
            self._items[key] = loaded
            return loaded

    @staticmethod
    async def _load(
        index: KnowledgeIndex, user_id: str, model: str, generation: int, dims: int
    ) -> Vectors:
        stmt = (
            sa.select(chunks.c.id, chunks.c.collection, documents.c.path, chunks.c.embedding)
            .join(documents, documents.c.id == chunks.c.document_id)
            .where(
                chunks.c.user_id == user_id,
                chunks.c.embed_model == model,
                chunks.c.embedding.is_not(None),
            )
            .order_by(chunks.c.collection, chunks.c.id)
        )
        rows = [r for r in await index.read(stmt) if len(r[3]) == dims * 4]
        counts = await index.read(
            sa.select(chunks.c.collection, sa.func.count())
            .where(chunks.c.user_id == user_id)
            .group_by(chunks.c.collection)
        )
        loaded = await asyncio.to_thread(build_vectors, rows, generation, dims)
        loaded.chunks = {str(r[0]): int(r[1]) for r in counts}
        return loaded


def build_vectors(rows: Sequence[Any], generation: int, dims: int) -> Vectors:
    """Rows (id, collection, path, embedding) sorted by collection -> one matrix."""
    import numpy as np

    n = len(rows)
    if not n:
        empty = np.zeros(0, dtype=np.int64)
        return Vectors(generation, VectorIndex(generation, [], np.zeros((0, dims))), {}, empty, [])
    matrix = np.frombuffer(b"".join(r[3] for r in rows), dtype=np.float32).reshape(n, dims)
    scopes: dict[str, tuple[int, int]] = {}
    codes: dict[str, int] = {}
    doc_codes = np.empty(n, dtype=np.int64)
    for i, r in enumerate(rows):
        start = scopes.get(r[1], (i, i))[0]
        scopes[r[1]] = (start, i + 1)
        doc_codes[i] = codes.setdefault(r[2], len(codes))
    index: VectorIndex[int] = VectorIndex(generation, [int(r[0]) for r in rows], matrix)
    index.encode()
    return Vectors(generation, index, scopes, doc_codes, list(codes))


async def fetch_chunks(index: KnowledgeIndex, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    if not ids:
        return {}
    stmt = (
        sa.select(
            chunks.c.id,
            chunks.c.document_id,
            chunks.c.collection,
            chunks.c.heading,
            chunks.c.text,
            chunks.c.line_start,
            chunks.c.line_end,
            chunks.c.page,
            chunks.c.symbol,
            chunks.c.text_hash,
            documents.c.path,
            documents.c.title,
            documents.c.kind,
        )
        .join(documents, documents.c.id == chunks.c.document_id)
        .where(chunks.c.id.in_(list(ids)))
    )
    return {int(r[0]): dict(r._mapping) for r in await index.read(stmt)}


def display_path(path: str) -> str:
    home = str(Path.home())
    if path.startswith(home + os.sep):
        return "~" + path[len(home) :]
    return path


def citation(row: dict[str, Any]) -> str:
    where = display_path(str(row["path"]))
    page, start, end = row.get("page"), row.get("line_start"), row.get("line_end")
    if page:
        where += f" p. {page}"
    elif start:
        where += f":{start}" if not end or end == start else f":{start}-{end}"
    heading = row.get("heading") or ""
    return f"{where} § {heading}" if heading else where
