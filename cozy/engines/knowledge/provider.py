"""`knowledge.local`: SQLite FTS5 + vectors, hybrid ranking with RRF, citations.

Its options are in `knowledge/options.py`. Without an embedder the engine works on
BM25 alone and says so in every result's metadata and in `cozy knowledge stats`.

This module is the `LocalKnowledge` class; search (and its result cache), the tool,
jobs, ingestion, the vector backfill and the index live beside it and depend on
`knowledge/parts.py` or on the index, not on this class.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from cozy.core.errors import EngineError, UsageError
from cozy.core.types import KnowledgeHit
from cozy.engines.base import EmbedEngine, EngineContext, Health, KnowledgeEngine
from cozy.engines.knowledge.index import DocRow, KnowledgeIndex
from cozy.engines.knowledge.ingest import Ingestor, IngestReport, OnPlan, OnResult, OnVectors
from cozy.engines.knowledge.keyword import chunk_scope, keyword_index
from cozy.engines.knowledge.options import MODES, LocalKnowledgeOptions
from cozy.engines.knowledge.parts import check_collection
from cozy.engines.knowledge.retrieval import VectorCache
from cozy.engines.knowledge.textio import LoadError, sha256_text
from cozy.engines.retrieval.embedder import LazyEmbedder, model_key
from cozy.engines.retrieval.keyword import KeywordIndex
from cozy.engines.retrieval.terms import DOC_STOPWORDS, query_terms
from cozy.storage.scope_versions import ScopeVersions


class LocalKnowledge(KnowledgeEngine):
    Options = LocalKnowledgeOptions
    provider_name: ClassVar[str] = "local"

    def __init__(
        self, options: dict[str, Any] | None = None, ctx: EngineContext | None = None
    ) -> None:
        super().__init__(options, ctx)
        o = LocalKnowledgeOptions.of(self.options, "knowledge")
        self.settings = o.ingest_settings()
        self.candidates = o.candidates
        self.embed_wait = o.embed_wait
        self.vector_timeout = o.vector_timeout
        self.search_wait = o.search_wait
        self.min_similarity = o.min_similarity
        self.keyword_budget = max(100, o.keyword_budget)
        self.use_embed = o.embed
        self.vectors = VectorCache()
        self._index: KnowledgeIndex | None = None
        self._keywords: KeywordIndex | None = None
        # each user's generation; with Redis (server mode) re-read only when it changed;
        # in local mode at most once a second (this process's own writes are seen at once;
        # another process's ingest, e.g. `cozy knowledge add` beside an open chat, within 1 s)
        self.versions = ScopeVersions(
            "knowledge",
            lambda user_id: self.index.generation(user_id),
            link=lambda: self.ctx.redis,
            local_ttl=1.0,
        )
        self.embeddings = LazyEmbedder(
            self.ctx.get_embedder,
            off=""
            if self.use_embed
            else "embeddings off (knowledge.embed: false): keyword search only",
            missing="no embed engine configured: keyword (BM25) search only — "
            "set `embed: {provider: local}` in engines.yaml for hybrid search",
            cold_start=self.ctx.settings.embed_cold_start if self.ctx.settings else True,
        )
        self._tool = False

    # -- lifecycle --------------------------------------------------------------

    @property
    def index(self) -> KnowledgeIndex:
        if self._index is None:
            store = self.ctx.store
            if store is None:
                raise EngineError("the knowledge engine needs a store", hint="open it via Runtime")
            self._index = KnowledgeIndex(store)
            self._index.on_write = self.versions.publish
        return self._index

    @property
    def keywords(self) -> KeywordIndex:
        if self._keywords is None:
            self._keywords = keyword_index(self.index.store, self.keyword_budget)
        return self._keywords

    async def initialize(self) -> None:
        from cozy.engines.knowledge.tool import register_tool

        if await self.index.has_chunks(vectors=False):  # offer the tool only when there is data
            register_tool(self)
            self._tool = True
        # warm the embedder only when it is needed, and not for a one-shot command
        if self.ctx.warm_embedder and await self.index.has_chunks(vectors=True):
            self.embeddings.warm()

    async def close(self) -> None:
        from cozy.engines.knowledge.tool import unregister_tool

        unregister_tool(self)
        await self.embeddings.close()
        self.vectors.clear()

    async def health_check(self) -> Health:
        try:
            gen = await self.index.generation("local")
        except Exception as exc:
            return Health(ok=False, detail=str(exc))
        return Health(ok=True, detail=f"index generation {gen}; {self.embed_note or 'ready'}")

    # -- embedder ---------------------------------------------------------------

    @property
    def embed_note(self) -> str:
        """Why there is no embedder ("" when there is one or it is still loading)."""
        return self.embeddings.note

    async def embedder(self, *, wait: float | None = None) -> EmbedEngine | None:
        """The embedder, or None (BM25 only). `wait`: at most this long for a cold start."""
        return await self.embeddings.get(wait=wait)

    async def keyword_search(
        self,
        query: str,
        user_id: str,
        collections: Sequence[str] | None,
        prefix: str | None,
        k: int,
        version: int,
    ) -> list[tuple[int, float]]:
        """(chunk id, score: higher is better) best first, within the user's scope."""
        terms = query_terms(query, stopwords=DOC_STOPWORDS, fallback=True)
        scope = chunk_scope(user_id, collections, prefix)
        found = await self.keywords.search(terms, k, scope, version=version)
        return [(int(cid), score) for cid, score in found]

    # -- ingestion --------------------------------------------------------------

    async def _ingestor(
        self, user_id: str, collection: str, embed: bool, defer: bool = False
    ) -> Ingestor:
        check_collection(collection)
        # deferred: never wait for the model to load (the vectors come later)
        engine = (self.embeddings.engine if defer else await self.embedder()) if embed else None
        if engine is not None and not engine.dimensions:
            # a remote embedder learns its dimensions from its first answer; the vectors
            # are stored under a key that includes them, so learn them before writing
            await engine.embed(["dimensions"])
        return Ingestor(
            self.index,
            user_id=user_id,
            collection=collection,
            embedder=engine,
            embed_model=model_key(engine) if engine is not None else None,
            settings=self.settings,
            defer=defer,
        )

    async def add_paths(
        self,
        paths: Sequence[Path | str],
        *,
        user_id: str,
        collection: str = "default",
        embed: bool = True,
        wait: bool = True,
        on_plan: OnPlan | None = None,
        on_result: OnResult | None = None,
        on_vectors: OnVectors | None = None,
    ) -> IngestReport:
        """Index files and directories (incrementally, by content hash).

        Chunks are written first (keyword-searchable at once), their vectors after:
        `wait` computes them before returning (`on_vectors(done, total)` reports
        progress); otherwise a durable `knowledge.embed` job does (`embed_job`).
        """
        ingestor = await self._ingestor(user_id, collection, embed, defer=True)
        try:
            report = await ingestor.run(paths, on_plan=on_plan, on_result=on_result)
        finally:
            await self._invalidate()
        if not embed:
            return report
        if not self._embeds():
            report.notes.append(self.embed_note or self.embeddings.missing)
            return report
        if wait:
            await self.embed_pending(user_id, collection, on_vectors=on_vectors)
            return report
        model = self.embeddings.model()  # None before it loads: chunks without any vector
        report.pending_vectors = (
            await self.index.count_unembedded(user_id, model, collection)
        ).get(collection, 0)
        if report.pending_vectors:
            from cozy.engines.knowledge.jobs import queue_embed

            report.embed_job = await queue_embed(self, user_id, collection)
        return report

    def _embeds(self) -> bool:
        """Embeddings are on and an embedder is configured (it need not be loaded)."""
        cfg = self.ctx.config
        return self.embeddings.enabled and (
            self.ctx.embedder is not None or (cfg is not None and cfg.section("embed").active)
        )

    async def embed_pending(
        self,
        user_id: str,
        collection: str | None = None,
        *,
        on_vectors: OnVectors | None = None,
        budget: float | None = None,
    ) -> int:
        """Embed the chunks still without a vector from the current model, a batch per
        transaction (each batch is searchable by vector once committed). Returns how
        many are left: 0, or more when `budget` seconds ran out (after one batch at least)."""
        from cozy.engines.knowledge.backfill import embed_pending

        engine = await self.embeddings.get()
        if engine is None:
            return 0
        return await embed_pending(
            self.index,
            engine,
            user_id,
            collection,
            on_batch=self._invalidate,
            on_vectors=on_vectors,
            budget=budget,
        )

    async def add_knowledge(
        self,
        text: str,
        *,
        user_id: str,
        collection: str = "default",
        source: str = "",
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """Index `text` as one document (its id back). With no text and `source` naming a
        file or directory, queue a durable `knowledge.ingest` job instead (its id back)."""
        from cozy.engines.knowledge.extract import extract_text, text_kind

        if not text.strip() and source:
            # a path, not a document: index it in a durable background job (job id back)
            return await self.queue_ingest([source], user_id=user_id, collection=collection)
        if not text.strip():
            raise UsageError("the document is empty", hint="send some text to index")
        meta = dict(metadata or {})
        kind = text_kind(meta, source)
        digest = sha256_text(text)
        path = source or f"inline:{digest[:16]}"
        ingestor = await self._ingestor(user_id, collection, True)
        existing = await self.index.get_document(user_id, collection, path)
        if existing is not None and existing.content_hash == digest:
            return existing.id
        try:
            extracted = await asyncio.to_thread(
                extract_text,
                text,
                kind,
                target=self.settings.chunk_tokens,
                overlap=self.settings.chunk_overlap,
            )
        except LoadError as exc:
            raise UsageError(exc.reason) from exc
        size = len(text.encode("utf-8", "surrogatepass"))
        try:
            new = await ingestor.prepare(path, extracted, digest, size, None, existing, meta)
            return await self.index.write_document(new, existing)
        finally:
            await self._invalidate()

    async def queue_ingest(
        self,
        paths: Sequence[Path | str],
        *,
        user_id: str,
        collection: str = "default",
        embed: bool = True,
    ) -> str:
        """Ingest files or directories in a durable background job; returns the job id."""
        from cozy.engines.knowledge.jobs import queue_ingest

        return await queue_ingest(self, paths, user_id=user_id, collection=collection, embed=embed)

    def background(self) -> Any:
        """The job handlers the runtime registers on its worker (see jobs.py)."""
        from cozy.engines.knowledge.jobs import KnowledgeJobs

        return KnowledgeJobs(self)

    async def remove(
        self, ref: str, *, user_id: str, collection: str | None = None
    ) -> list[DocRow]:
        """Remove documents by id, exact path, or every document under a directory path."""
        docs = await self.index.list_documents(user_id, collection=collection, ref=ref)
        if not docs:
            resolved = ref
            if not ref.startswith("kdoc_"):
                resolved = str(await asyncio.to_thread(lambda: Path(ref).expanduser().resolve()))
            docs = await self.index.list_documents(user_id, collection=collection, ref=resolved)
            if not docs and resolved != ref:
                docs = await self.index.list_documents(
                    user_id, collection=collection, prefix=resolved.rstrip("/") + "/"
                )
        if docs:
            await self.index.remove_documents(user_id, [d.id for d in docs])
            await self._invalidate()
        return docs

    async def list_documents(
        self, *, user_id: str, collection: str | None = None, prefix: str | None = None
    ) -> list[DocRow]:
        return await self.index.list_documents(user_id, collection=collection, prefix=prefix)

    async def stats(self, *, user_id: str) -> dict[str, Any]:
        """Per collection: documents, bytes, chunks, vectors by model and `pending_vectors`
        (chunks the current model has not embedded yet: the background job's progress)."""
        out = await self.index.stats(user_id)
        if self._embeds():
            # the loaded model's key; before it is loaded (stats never waits for it),
            # the chunks without any vector
            pending = await self.index.count_unembedded(user_id, self.embeddings.model())
            for name, coll in out.items():
                coll["pending_vectors"] = pending.get(name, 0)
        return out

    async def _invalidate(self) -> None:
        if not self._tool:
            from cozy.engines.knowledge.tool import register_tool

            register_tool(self)
            self._tool = True
        if self.ctx.cache is not None:
            await self.ctx.cache.bump("knowledge")

    # -- search -----------------------------------------------------------------

    async def search_knowledge(
        self,
        query: str,
        *,
        user_id: str,
        collections: Sequence[str] | None = None,
        limit: int = 5,
    ) -> list[KnowledgeHit]:
        return await self.search(
            query, user_id=user_id, collections=collections, limit=limit, wait=self.embed_wait
        )

    async def search(
        self,
        query: str,
        *,
        user_id: str,
        collections: Sequence[str] | None = None,
        prefix: str | None = None,
        limit: int = 5,
        mode: str = "hybrid",
        wait: float | None = None,
    ) -> list[KnowledgeHit]:
        from cozy.engines.knowledge.search import cache_key, hit_dict, run_search

        if mode not in MODES:
            raise UsageError(f"unknown search mode '{mode}'", hint=f"use one of {', '.join(MODES)}")
        if not 1 <= limit <= 100:
            raise UsageError("limit must be between 1 and 100", hint="pass --limit 1..100")
        generation = await self.versions.get(user_id)
        if not generation or not query.strip():
            return []
        key = cache_key(user_id, query, collections, prefix, limit, mode, generation)
        cache = self.ctx.cache
        if cache is not None:
            cached = await cache.get("knowledge", key)
            if cached is not None:
                return [KnowledgeHit(**h) for h in cached]
        # wait=None: nothing else waits on this search (the CLI, the user's own search):
        # a cold embedder gets `search_wait` to load, the query embedding as long; the
        # context stage of a turn passes its own short wait and `vector_timeout` applies
        load, embedding = (
            (self.search_wait, self.search_wait) if wait is None else (wait, self.vector_timeout)
        )
        hits = await run_search(
            self, query, user_id, collections, prefix, limit, mode, load, generation, embedding
        )
        if cache is not None and not any(h.metadata.get("partial") for h in hits):
            await cache.set("knowledge", key, [hit_dict(h) for h in hits])
        return hits
