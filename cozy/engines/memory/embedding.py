"""The memory engine's side of embeddings: lazy embedder, query vectors under a budget.

The embedder loads in the background (opening cozy never waits for it); a search
that cannot get its query vector within `vector_timeout` answers with keywords
only and says why. Query vectors are kept in an LRU, so a repeated query (or one
whose embedding finished after its search gave up) is embedded once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence

from cozy.engines.base import EmbedEngine, EngineContext

log = logging.getLogger("cozy.memory")

QUERY_CACHE = 512


class EmbeddingMixin:
    """Mixed into LocalMemory: everything that talks to the `embed` engine."""

    ctx: EngineContext
    use_embeddings: bool
    vector_timeout: float

    def _init_embedding(self, embedder: EmbedEngine | None) -> None:
        self._embedder = embedder
        self._embed_task: asyncio.Task[EmbedEngine | None] | None = None
        self._embed_error: str | None = None
        self._qcache: OrderedDict[str, list[float]] = OrderedDict()

    async def _load_embedder(self) -> EmbedEngine | None:
        load = self.ctx.load_embedder
        try:
            engine = await load() if load is not None else None
        except Exception as exc:  # a broken embedder degrades to keyword search
            self._embed_error = f"embedder unavailable ({exc})"
            log.warning("memory: %s", self._embed_error)
            return None
        if engine is None:
            self._embed_error = (
                "no embedder configured (set `embed: {provider: local}` in engines.yaml)"
            )
            return None
        self._embedder = engine
        return engine

    async def embedder(self, wait: float | None = None) -> EmbedEngine | None:
        if self._embedder is not None or not self.use_embeddings:
            return self._embedder
        if self._embed_task is None:
            if self.ctx.load_embedder is None:
                return None
            self._embed_task = asyncio.create_task(self._load_embedder())
        if wait is not None and not self._embed_task.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._embed_task), wait)
            if not self._embed_task.done():
                return None
        return await self._embed_task

    def embed_model(self) -> str | None:
        e = self._embedder
        if e is None:
            return None
        return f"{e.provider_name}:{getattr(e, 'model_name', None) or getattr(e, 'model', '')}"

    async def embed(self, texts: Sequence[str]) -> list[list[float]] | None:
        """Vectors for texts, or None when no embedder is available (keyword only)."""
        engine = await self.embedder()
        if engine is None or not texts:
            return None
        try:
            return await engine.embed(list(texts))
        except Exception as exc:
            log.warning("memory: embedding failed, stored without vectors (%s)", exc)
            return None

    async def _query_vector(
        self, query: str, wait: float | None = None
    ) -> tuple[list[float] | None, str | None]:
        budget = self.vector_timeout if wait is None else wait
        if not self.use_embeddings:
            return None, None
        cached = self._qcache.get(query)
        if cached is not None:
            self._qcache.move_to_end(query)
            return cached, None
        started = time.perf_counter()
        engine = await self.embedder(wait=budget)
        if engine is None:
            if self._embed_task is not None and not self._embed_task.done():
                return None, "embedder still loading; keyword search only"
            return None, (self._embed_error or "no embedder") + "; keyword search only"
        left = max(0.01, budget - (time.perf_counter() - started))
        task = asyncio.ensure_future(engine.embed([query]))
        try:
            (vec,) = await asyncio.wait_for(asyncio.shield(task), left)
        except TimeoutError:
            task.add_done_callback(lambda t: self._remember(query, t))
            return None, f"query embedding took over {budget:g}s; keyword only"
        except Exception as exc:
            return None, f"query embedding failed ({exc}); keyword search only"
        self._remember_vec(query, vec)
        return vec, None

    def _remember(self, query: str, task: asyncio.Future[list[list[float]]]) -> None:
        if not task.cancelled() and task.exception() is None:
            self._remember_vec(query, task.result()[0])

    def _remember_vec(self, query: str, vec: list[float]) -> None:
        self._qcache[query] = vec
        while len(self._qcache) > QUERY_CACHE:
            self._qcache.popitem(last=False)
