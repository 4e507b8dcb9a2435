"""SQL side of the knowledge engine: documents and chunks, one transaction per document.

Every write bumps the user's generation in `knowledge_state` inside the same
transaction, so readers (the vector cache, the L2 result cache) can tell that the
index changed with one tiny lookup.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from cozy.engines.knowledge.chunking import Chunk, text_hash
from cozy.storage.schema import new_id, utcnow
from cozy.storage.store_base import StoreBase
from cozy.storage.tables.knowledge import chunks, documents, state

T = TypeVar("T")


@dataclass(slots=True)
class DocRow:
    id: str
    collection: str
    path: str
    title: str | None
    kind: str
    content_hash: str
    size_bytes: int
    mtime: float | None
    chunk_count: int
    created_at: float
    updated_at: float
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "collection": self.collection,
            "path": self.path,
            "title": self.title,
            "kind": self.kind,
            "content_hash": self.content_hash,
            "size_bytes": self.size_bytes,
            "chunks": self.chunk_count,
            "updated_at": self.updated_at,
        }


@dataclass(slots=True)
class NewDocument:
    user_id: str
    collection: str
    path: str
    title: str
    kind: str
    content_hash: str
    size_bytes: int
    mtime: float | None
    chunks: list[Chunk]
    vectors: list[bytes | None]
    embed_model: str | None
    # per chunk, the model of a reused vector (a deferred ingest keeps whatever vector a
    # chunk had; embed_pending replaces those of another model); None: `embed_model`
    models: list[str | None] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def _doc(row: Any) -> DocRow:
    m = row._mapping
    return DocRow(
        m["id"],
        m["collection"],
        m["path"],
        m["title"],
        m["kind"],
        m["content_hash"],
        int(m["size_bytes"] or 0),
        m["mtime"],
        int(m["chunk_count"] or 0),
        m["created_at"],
        m["updated_at"],
        m["metadata"] or {},
    )


def _chunk_rows(doc_id: str, doc: NewDocument) -> list[dict[str, Any]]:
    model = doc.embed_model
    return [
        {
            "document_id": doc_id,
            "user_id": doc.user_id,
            "collection": doc.collection,
            "ord": i,
            "heading": c.heading,
            "text": c.text,
            "line_start": c.line_start,
            "line_end": c.line_end,
            "page": c.page,
            "symbol": c.symbol,
            "tokens": c.tokens,
            "text_hash": text_hash(c.text),
            "embedding": vec,
            "embed_model": (doc.models[i] if doc.models else model) if vec is not None else None,
        }
        for i, (c, vec) in enumerate(zip(doc.chunks, doc.vectors, strict=True))
    ]


def like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


class KnowledgeIndex:
    """Documents and chunks through the store's own read and write paths (on SQLite:
    its write queue, one writer per process, and reads in one worker-thread hop)."""

    def __init__(self, store: StoreBase) -> None:
        self.store = store
        self.engine = store.engine
        # called after a write committed, with the users whose generation moved
        self.on_write: Callable[[list[str]], Awaitable[None]] | None = None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    # -- plumbing ---------------------------------------------------------------

    async def write(
        self, fn: Callable[[AsyncConnection], Awaitable[T]], changed: Sequence[str] = ()
    ) -> T:
        """One transaction; then `on_write(changed)`: the users whose generation it bumped."""

        result = await self.store.write(fn)
        if changed and self.on_write is not None:
            await self.on_write(list(changed))
        return result

    async def read(self, stmt: Any, params: dict[str, Any] | None = None) -> list[Any]:
        return await self.store.read(stmt, params)

    @staticmethod
    async def _bump(conn: AsyncConnection, user_id: str) -> None:
        now = utcnow()
        updated = await conn.execute(
            sa.update(state)
            .where(state.c.user_id == user_id)
            .values(generation=state.c.generation + 1, updated_at=now)
        )
        if not updated.rowcount:
            await conn.execute(
                sa.insert(state).values(user_id=user_id, generation=1, updated_at=now)
            )

    async def generation(self, user_id: str) -> int:
        rows = await self.read(sa.select(state.c.generation).where(state.c.user_id == user_id))
        return int(rows[0][0]) if rows else 0

    # -- documents --------------------------------------------------------------

    async def get_document(self, user_id: str, collection: str, path: str) -> DocRow | None:
        rows = await self.read(
            sa.select(documents).where(
                documents.c.user_id == user_id,
                documents.c.collection == collection,
                documents.c.path == path,
            )
        )
        return _doc(rows[0]) if rows else None

    async def list_documents(
        self,
        user_id: str,
        *,
        collection: str | None = None,
        prefix: str | None = None,
        ref: str | None = None,
    ) -> list[DocRow]:
        stmt = sa.select(documents).where(documents.c.user_id == user_id)
        if collection:
            stmt = stmt.where(documents.c.collection == collection)
        if prefix:
            stmt = stmt.where(documents.c.path.like(like_prefix(prefix), escape="\\"))
        if ref:
            stmt = stmt.where(sa.or_(documents.c.id == ref, documents.c.path == ref))
        rows = await self.read(stmt.order_by(documents.c.collection, documents.c.path))
        return [_doc(r) for r in rows]

    async def write_document(self, doc: NewDocument, existing: DocRow | None) -> str:
        """Replace a document's chunks (or add it) in one transaction."""
        return (await self.write_documents([(doc, existing)]))[0]

    async def write_documents(
        self, batch: Sequence[tuple[NewDocument, DocRow | None]]
    ) -> list[str]:
        """Replace (or add) several documents in ONE transaction: each document ends up
        either in its old or in its new version, and the FTS index is flushed once."""
        if not batch:
            return []
        now = utcnow()
        ids = [old.id if old is not None else new_id("kdoc") for _, old in batch]
        rows: list[dict[str, Any]] = []
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        for doc_id, (doc, old) in zip(ids, batch, strict=True):
            rows.extend(_chunk_rows(doc_id, doc))
            values = {
                "title": doc.title,
                "kind": doc.kind,
                "content_hash": doc.content_hash,
                "size_bytes": doc.size_bytes,
                "mtime": doc.mtime,
                "chunk_count": len(doc.chunks),
                "updated_at": now,
                "metadata": doc.metadata,
            }
            if old is not None:
                updates.append({"did": doc_id, **values})
            else:
                inserts.append(
                    {"id": doc_id, "user_id": doc.user_id, "collection": doc.collection,
                     "path": doc.path, "created_at": now, **values}
                )  # fmt: skip
        users = {doc.user_id for doc, _ in batch}

        async def tx(conn: AsyncConnection) -> list[str]:
            if updates:
                replaced = [u["did"] for u in updates]
                await conn.execute(sa.delete(chunks).where(chunks.c.document_id.in_(replaced)))
                await conn.execute(
                    sa.update(documents)
                    .where(documents.c.id == sa.bindparam("did"))
                    .values({k: sa.bindparam(k) for k in updates[0] if k != "did"}),
                    updates,
                )
            if inserts:
                await conn.execute(sa.insert(documents), inserts)
            if rows:
                await conn.execute(sa.insert(chunks), rows)
            for user_id in sorted(users):
                await self._bump(conn, user_id)
            return ids

        return await self.write(tx, sorted(users))

    async def move_document(
        self, user_id: str, doc_id: str, new_path: str, mtime: float | None
    ) -> None:
        async def tx(conn: AsyncConnection) -> None:
            await conn.execute(
                sa.update(documents)
                .where(documents.c.id == doc_id, documents.c.user_id == user_id)
                .values(path=new_path, mtime=mtime, updated_at=utcnow())
            )
            await self._bump(conn, user_id)

        await self.write(tx, [user_id])

    async def remove_documents(self, user_id: str, doc_ids: Sequence[str]) -> int:
        if not doc_ids:
            return 0

        async def tx(conn: AsyncConnection) -> int:
            ids = list(doc_ids)
            await conn.execute(
                sa.delete(chunks).where(chunks.c.document_id.in_(ids), chunks.c.user_id == user_id)
            )
            result = await conn.execute(
                sa.delete(documents).where(documents.c.id.in_(ids), documents.c.user_id == user_id)
            )
            await self._bump(conn, user_id)
            return int(result.rowcount or 0)

        return await self.write(tx, [user_id])

    # -- embeddings -------------------------------------------------------------

    async def known_vectors(self, doc_id: str, model: str) -> dict[str, bytes]:
        """text_hash -> embedding of a document's current chunks (to reuse on re-ingest)."""
        found = await self.known_vectors_any(doc_id)
        return {h: vec for h, (vec, m) in found.items() if m == model}

    async def known_vectors_any(self, doc_id: str) -> dict[str, tuple[bytes, str | None]]:
        """text_hash -> (embedding, its model) of a document's current chunks."""
        rows = await self.read(
            sa.select(chunks.c.text_hash, chunks.c.embedding, chunks.c.embed_model).where(
                chunks.c.document_id == doc_id, chunks.c.embedding.is_not(None)
            )
        )
        return {r[0]: (r[1], r[2]) for r in rows}

    async def unembedded(self, user_id: str, doc_id: str, model: str) -> list[tuple[int, str]]:
        """Chunks of a document without a vector from `model`: (id, text to embed)."""
        rows = await self.read(
            sa.select(chunks.c.id, chunks.c.heading, chunks.c.text).where(
                chunks.c.document_id == doc_id,
                chunks.c.user_id == user_id,
                sa.or_(chunks.c.embedding.is_(None), chunks.c.embed_model != model),
            )
        )
        return [(r[0], f"{r[1]}\n{r[2]}" if r[1] else r[2]) for r in rows]

    def _unembedded(self, user_id: str, model: str | None, collection: str | None) -> Any:
        """Chunks without a vector of `model` (None: without any vector)."""
        missing: sa.ColumnElement[bool] = chunks.c.embedding.is_(None)
        if model is not None:
            missing = sa.or_(missing, chunks.c.embed_model != model)
        cond = sa.and_(chunks.c.user_id == user_id, missing)
        return cond if collection is None else sa.and_(cond, chunks.c.collection == collection)

    async def unembedded_chunks(
        self, user_id: str, model: str, *, collection: str | None, after: int, limit: int
    ) -> list[tuple[int, str]]:
        """The next `limit` chunks (by id, above `after`) without a vector from `model`:
        (id, text to embed)."""
        rows = await self.read(
            sa.select(chunks.c.id, chunks.c.heading, chunks.c.text)
            .where(self._unembedded(user_id, model, collection), chunks.c.id > after)
            .order_by(chunks.c.id)
            .limit(limit)
        )
        return [(r[0], f"{r[1]}\n{r[2]}" if r[1] else r[2]) for r in rows]

    async def count_unembedded(
        self, user_id: str, model: str | None, collection: str | None = None
    ) -> dict[str, int]:
        """Chunks without a vector from `model`, per collection."""
        rows = await self.read(
            sa.select(chunks.c.collection, sa.func.count())
            .where(self._unembedded(user_id, model, collection))
            .group_by(chunks.c.collection)
        )
        return {str(r[0]): int(r[1]) for r in rows}

    async def set_vectors(
        self, user_id: str, items: Sequence[tuple[int, bytes]], model: str
    ) -> None:
        async def tx(conn: AsyncConnection) -> None:
            await conn.execute(
                sa.update(chunks)
                .where(chunks.c.id == sa.bindparam("cid"))
                .values(embedding=sa.bindparam("vec"), embed_model=model),
                [{"cid": cid, "vec": vec} for cid, vec in items],
            )
            await self._bump(conn, user_id)

        if items:
            await self.write(tx, [user_id])

    # -- overview ---------------------------------------------------------------

    async def has_chunks(self, *, vectors: bool) -> bool:
        """Whether any user has a chunk (with a vector, when `vectors`)."""
        stmt = sa.select(chunks.c.id).limit(1)
        if vectors:
            stmt = stmt.where(chunks.c.embedding.is_not(None))
        return bool(await self.read(stmt))

    async def stats(self, user_id: str) -> dict[str, Any]:
        doc_rows = await self.read(
            sa.select(
                documents.c.collection,
                sa.func.count(),
                sa.func.coalesce(sa.func.sum(documents.c.size_bytes), 0),
                sa.func.coalesce(sa.func.sum(documents.c.chunk_count), 0),
                sa.func.max(documents.c.updated_at),
            )
            .where(documents.c.user_id == user_id)
            .group_by(documents.c.collection)
        )
        vec_rows = await self.read(
            sa.select(chunks.c.collection, chunks.c.embed_model, sa.func.count())
            .where(chunks.c.user_id == user_id, chunks.c.embedding.is_not(None))
            .group_by(chunks.c.collection, chunks.c.embed_model)
        )
        out: dict[str, Any] = {}
        for coll, ndocs, size, nchunks, updated in doc_rows:
            out[coll] = {
                "documents": int(ndocs),
                "bytes": int(size),
                "chunks": int(nchunks),
                "embedded": {},
                "updated_at": updated,
            }
        for coll, model, count in vec_rows:
            if coll in out:
                out[coll]["embedded"][model or "?"] = int(count)
        return out
