"""`memory.local`: extracted facts and raw turns in SQL, hybrid keyword + vector search.

Options (engines.yaml `memory:`):

- `model`: the model for fact extraction (`provider:model`; default: the AI default)
- `scope`: `user` (default: memories follow the user across personalities) or `personality`
- `embeddings`: true (default) uses the `embed:` engine; false is keyword-only
- `vector_timeout`: seconds the query embedding may take before search answers with
  keywords only (default 0.3)
- `recency_half_life_days`: weight recent memories up (default 0: off)
- `dedupe_threshold`: cosine above which a new fact is a near duplicate (default 0.92)
- `search_min_similarity`: `cozy memory search` shows a memory only when it shares a
  word with the query or its cosine is at least this (default 0.25; 0 shows every hit)
- `chunk_chars`: long messages are indexed in chunks of this size (default 1500)
- `extract_attempts`, `extract_max_tokens`: retries and answer size for extraction
- `keyword_weight` (1.5), `rrf_k` (10), `neighbour_spread` (0.05), `context_weight` (0.35:
  BM25 weight of a turn's neighbours): hybrid fusion, tuned in bench/locomo_eval.py
- `entity_weight` (0.3), `date_weight` (0.3), `when_weight` (0.3), `session_weight` (0.5),
  `session_top` (1), `feedback` (0.5), `feedback_docs` (5), `answer_spread` (0.2): the
  second stage of hybrid ranking (memory/rank.py: names and dates of the question, "when"
  questions, the session signal, a feedback vector search, answers after question turns)
- `keyword_budget`: rows BM25 ranks at most per query (default 5000; see retrieval/keyword.py)
- `index_assistant`: also index the assistant's answers as raw turns (default false)
- `backlog_limit`: pending jobs past which saved turns queue no memory jobs (logged and
  counted in /metrics: `jobs_dropped_total`); default 2000, 0 for none
- `turn_context`: index each turn with its neighbouring turns (default true; memory/turns.py)

The class holds the options, the embedder and the per-user vector index; search is
memory/hybrid.py, and the other helpers (rank, stages, reconcile, turns, jobs, repo)
live beside it too, depending on `memory/parts.py`, not on this class.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any, ClassVar

from cozy.core.errors import ConfigError
from cozy.core.types import MemoryHit
from cozy.engines.base import EngineContext, Health, MemoryEngine
from cozy.engines.memory import hybrid, reconcile
from cozy.engines.memory.rank import RankOptions, Weights
from cozy.engines.memory.repo import MemoryRepo, MemoryRow, keyword_index
from cozy.engines.memory.search import RowCache
from cozy.engines.memory.types import TurnInput
from cozy.engines.retrieval.embedder import LazyEmbedder
from cozy.engines.retrieval.vector_index import VectorIndex
from cozy.storage.scope_versions import ScopeVersions

log = logging.getLogger("cozy.memory")


class LocalMemoryOptions(RankOptions):
    """The options listed in this module's docstring (the second ranking stage's, memory/rank.py
    `RankOptions`, included)."""

    model: str | None = None
    scope: str = "user"
    embeddings: bool = True
    vector_timeout: float = 0.3
    recency_half_life_days: float = 0
    dedupe_threshold: float = 0.92
    search_min_similarity: float = 0.25
    chunk_chars: int = 1500
    max_chunks: int = 32
    extract_attempts: int = 2
    extract_max_tokens: int | None = 800
    keyword_weight: float = 1.5
    rrf_k: float = 10.0
    # 0.05, not 0.1: every leave-one-conversation-out fold of bench/locomo_eval.py
    # --folds chose it on the other four conversations (held-out R@10 up or equal)
    neighbour_spread: float = 0.05
    context_weight: float = 0.35
    keyword_budget: int = 5000
    index_assistant: bool = False
    turn_context: bool = True
    version_ttl: float = 0.5
    # memory jobs pending (all kinds, this database) past which turns queue none: a
    # worker slower than the traffic drops extractions (logged, in /metrics) instead of
    # growing its queue without bound; 0: no limit
    backlog_limit: int = 2000


class LocalMemory(MemoryEngine):
    Options = LocalMemoryOptions
    provider_name: ClassVar[str] = "local"
    restorable: ClassVar[bool] = True  # forget is a soft delete

    def __init__(
        self, options: dict[str, Any] | None = None, ctx: EngineContext | None = None
    ) -> None:
        super().__init__(options, ctx)
        o = LocalMemoryOptions.of(self.options, "memory")
        self.scope = o.scope
        if self.scope not in ("user", "personality"):
            raise ConfigError(
                f"memory.scope must be 'user' or 'personality', got {self.scope!r}",
                hint="fix `memory.scope` in engines.yaml",
            )
        self.use_embeddings = o.embeddings
        self.vector_timeout = o.vector_timeout
        self.half_life = o.recency_half_life_days
        self.keyword_weight = o.keyword_weight
        self.rrf_k = o.rrf_k
        self.neighbour_spread = o.neighbour_spread
        self.rank_weights = Weights.of(o)
        self.dedupe_threshold = o.dedupe_threshold
        self.min_similarity = o.search_min_similarity
        self.chunk_chars = o.chunk_chars
        self.max_chunks = o.max_chunks
        self.extract_attempts = o.extract_attempts
        self.extract_max_tokens = o.extract_max_tokens
        self.model: str | None = o.model
        self.index_assistant = o.index_assistant
        self.backlog_limit = o.backlog_limit
        self.turn_context = o.turn_context
        store = self.ctx.store
        if store is None:
            raise ConfigError("memory.local needs the store", hint="open it through the Runtime")
        self.repo = MemoryRepo(store)
        self.repo.keywords = keyword_index(
            store,
            context_weight=o.context_weight,
            budget=max(100, o.keyword_budget),
        )
        self.embeddings = LazyEmbedder(
            self.ctx.load_embedder,
            off="" if self.use_embeddings else "embeddings off (memory.embeddings: false)",
            missing="no embedder configured (set `embed: {provider: local}` in engines.yaml)",
            cold_start=self.ctx.settings.embed_cold_start if self.ctx.settings else True,
        )
        if self.ctx.embedder is not None:
            self.embeddings.use(self.ctx.embedder)
        self._indexes: dict[str, VectorIndex[str]] = {}
        self._row_cache: RowCache[MemoryRow] = RowCache()
        # a user's version: with Redis (server mode) a change token says when to re-read
        # it; without, it is re-read after `version_ttl` s (other processes' writes);
        # always after every write of this process (storage/scope_versions.py)
        self.version_ttl = o.version_ttl
        self.versions = ScopeVersions("memory", self.repo.version, link=lambda: self.ctx.redis)
        self.repo.on_write = self.versions.publish

    # --- embedder ---------------------------------------------------------------
    async def initialize(self) -> None:
        # in the background, only when there are vectors: opening cozy never waits for it
        if (
            self.embeddings.enabled
            and self.ctx.warm_embedder  # not for a one-shot command (engines/base.py)
            and self.ctx.load_embedder is not None
            and await self.repo.has_vectors()
        ):
            self.embeddings.warm()

    async def close(self) -> None:
        await self.embeddings.close()

    async def health_check(self) -> Health:
        # well inside the readiness deadline (5 s): a model still loading on a busy
        # machine is keyword search for now, not a failed check
        engine = await self.embeddings.get(wait=2.0)
        if engine is None and self.embeddings.loading:
            return Health(ok=True, detail="embedder loading: keyword search until it is ready")
        if engine is None and self.use_embeddings:
            detail = f"keyword search only: {self.embeddings.note or 'no embedder'}"
            if not self.embeddings.cold:
                # every answer then says `X-Cozy-Degraded: memory`, so /ready lists it
                # too (it said nothing while a broken embed config degraded them all)
                detail = "DEGRADED: " + detail
            return Health(
                ok=True,
                detail=detail,
                fix="set `embed: {provider: local}` in engines.yaml for semantic recall",
            )
        return Health(ok=True, detail="hybrid search (keywords + vectors)")

    def embed_model(self) -> str | None:
        """The model key stored beside new vectors (retrieval/embedder.py)."""
        return self.embeddings.model()

    async def embed(self, texts: Sequence[str]) -> list[list[float]] | None:
        """Vectors for texts, or None when no embedder is available (keyword only)."""
        return await self.embeddings.embed(texts)

    async def query_vector(
        self, query: str, wait: float | None = None
    ) -> tuple[list[float] | None, str | None]:
        """The query's vector, or None and why (keyword only), within `vector_timeout`."""
        return await self.embeddings.query_vector(
            query, self.vector_timeout if wait is None else wait
        )

    # --- vector index -------------------------------------------------------------
    async def version(self, user_id: str, *, fresh: bool = False) -> int:
        return await self.versions.get(user_id, fresh=fresh, ttl=self.version_ttl)

    async def index(self, user_id: str, version: int | None = None) -> VectorIndex[str]:
        """This user's vector matrix, brought up to date incrementally when it moved."""
        import numpy as np

        version = await self.version(user_id) if version is None else version
        idx = self._indexes.get(user_id)
        if idx is not None and idx.version == version:
            return idx
        if idx is not None and idx.refreshed_at > 0:
            started = time.time()
            changed, count = await self.repo.changes(user_id, idx.refreshed_at)
            for mid, blob, status in changed:
                if status == "active" and blob:
                    idx.add(mid, np.frombuffer(blob, dtype=np.float32))
                else:
                    idx.remove(mid)
            if len(idx) == count:
                idx.version, idx.refreshed_at = version, started - 5.0  # clock margin
                return idx
        started = time.time()
        ids, mat, _models = await self.repo.vectors(user_id)
        idx = VectorIndex[str](version, ids, mat)
        from cozy.engines.retrieval.vectors import APPROX_FROM

        if len(idx) >= APPROX_FROM:
            # its int8 copy (~0.18 CPU s at 100k rows) in a worker thread, where numpy releases
            # the GIL: searches run on the caller's thread (hybrid.py), so it is not made there
            await asyncio.to_thread(idx.encode)
        idx.refreshed_at = started - 5.0
        self._indexes[user_id] = idx
        return idx

    async def rows_of(self, user_id: str, version: int, ids: Sequence[str]) -> dict[str, MemoryRow]:
        """The rows of these ids, read once per version of the user (search/RowCache)."""
        cache = self._row_cache.get(user_id, version)
        missing = [m for m in ids if m not in cache]
        if missing:
            cache.update(await self.repo.get_many(missing))
        return {m: cache[m] for m in ids if m in cache}

    async def write(
        self,
        user_id: str,
        fn: Any,
        added: Sequence[tuple[str, Sequence[float] | None]] = (),
        stale: bool = False,
    ) -> Any:
        """Run a write transaction; keep this process's vector index in step.

        `stale`: the write changed or removed vectors; the next search refreshes
        the index from the rows written since its last refresh.
        """
        result = await self.repo.write(user_id, fn)
        version = await self.version(user_id, fresh=True)
        idx = self._indexes.get(user_id)
        if idx is None or stale:
            return result
        if idx.version == version - 1:
            for mid, vec in added:
                if vec is not None:
                    idx.add(mid, vec)
            idx.version = version
        return result

    # --- search: one hybrid search (memory/hybrid.py) ------------------------------
    search = hybrid.search

    async def search_memories(
        self,
        query: str,
        *,
        user_id: str,
        limit: int = 5,
        personality_id: str | None = None,
        session_id: str | None = None,
    ) -> list[MemoryHit]:
        return await self.search(
            query,
            user_id=user_id,
            limit=limit,
            personality_id=personality_id,
            exclude_session=session_id,
        )

    # --- the user's own view (CLI, TUI, server): every change goes through reconcile ---
    async def list_memories(
        self, user_id: str, *, kinds: Sequence[str] = ("fact",), include_removed: bool = False
    ) -> list[MemoryRow]:
        statuses = ("active", "obsolete", "deleted") if include_removed else ("active",)
        return await self.repo.list_rows(user_id, kinds=kinds, statuses=statuses, limit=None)

    async def find_memories(
        self, query: str, *, user_id: str, limit: int, min_similarity: float | None = None
    ) -> list[MemoryHit]:
        # no answer is waiting on this search: give the embedder time to load
        return await self.search(
            query,
            user_id=user_id,
            limit=limit,
            vector_wait=60.0,
            min_similarity=self.min_similarity if min_similarity is None else min_similarity,
        )

    remember = reconcile.add_text
    edit_memory = reconcile.edit

    async def forget(self, user_id: str, memory_id: str) -> MemoryRow:
        return await reconcile.set_status(
            self, user_id, memory_id, "deleted", reason="forgotten by the user"
        )

    async def restore(self, user_id: str, memory_id: str) -> MemoryRow:
        return await reconcile.set_status(
            self, user_id, memory_id, "active", reason="restored by the user"
        )

    async def history(self, user_id: str, memory_id: str) -> list[dict[str, Any]]:
        return await self.repo.history_of(memory_id, user_id)

    export = reconcile.export

    # --- writes -----------------------------------------------------------------
    async def index_turns(
        self,
        turns: Sequence[TurnInput],
        *,
        user_id: str,
        session_id: str | None = None,
        personality_id: str | None = None,
    ) -> list[str]:
        """Index raw messages with their neighbours (see memory/turns.py)."""
        from cozy.engines.memory.turns import index_turns

        return await index_turns(
            self, turns, user_id=user_id, session_id=session_id, personality_id=personality_id
        )

    add_memory = reconcile.extract_and_apply

    def background(self) -> Any:
        """The turn hook and job handlers the runtime wires (see memory/jobs.py)."""
        from cozy.engines.memory.jobs import MemoryJobs

        return MemoryJobs(self)
