"""The embedder as memory and knowledge see it: loaded lazily, query vectors cached.

The embed engine loads in the background (opening cozy never waits for it); a search
that cannot get its query vector in time answers with keywords only and says why.
Query vectors are kept per embed engine instance (retrieval/query_batch.py), so a
repeated question (or one whose embedding finished after its search gave up) is
embedded once, memory and knowledge share it, and a vector of one model is never used
against another model's matrix.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from cozy.engines.base import EmbedEngine
from cozy.engines.retrieval.query_batch import batcher_of

log = logging.getLogger("cozy.retrieval")

YIELD_TO_QUERIES = 2.0  # s

Loader = Callable[[], Awaitable[EmbedEngine | None]]


def model_key(engine: Any) -> str:
    """What a stored vector was made with: provider, model and dimensions."""
    name = getattr(engine, "model_name", "") or getattr(engine, "model", "") or ""
    provider = getattr(engine, "provider_name", "?")
    return f"{provider}:{name}:{getattr(engine, 'dimensions', '?')}"


class LazyEmbedder:
    """The `embed` engine, loaded on first use by `loader` (None: not configured).

    `note` says why there is no embedder (shown with keyword-only results); `off`
    disables embeddings altogether (the engine's own option).
    """

    def __init__(
        self, loader: Loader | None, *, off: str = "", missing: str = "", cold_start: bool = True
    ) -> None:
        self._loader = loader
        # False: a search that cannot wait does not start the load (a one-shot process)
        self.cold_start = cold_start
        self.engine: EmbedEngine | None = None
        self.note = off
        self._off = bool(off)
        self.missing = missing or "no embedder configured (set `embed: {provider: local}`)"
        self._task: asyncio.Task[EmbedEngine | None] | None = None
        # how long `embed` (stored texts) lets queued query embeddings go first
        self.yield_to_queries = YIELD_TO_QUERIES

    @property
    def enabled(self) -> bool:
        return not self._off

    @property
    def cold(self) -> bool:
        """Not loaded, not loading, and a search may not start it (a one-shot run)."""
        return self.engine is None and self._task is None and not self.cold_start

    @property
    def loading(self) -> bool:
        return self._task is not None and not self._task.done()

    def use(self, engine: Any) -> None:
        """Use this engine (tests and benches that bring their own)."""
        self.engine, self.note = engine, ""

    async def _load(self) -> EmbedEngine | None:
        if self._loader is None:
            self.note = self.missing
            return None
        try:
            engine = await self._loader()
        except Exception as exc:  # a broken embedder degrades to keyword search
            self.note = f"embedder unavailable ({exc})"
            log.warning("%s", self.note)
            return None
        if engine is None:
            self.note = self.missing
            return None
        if not isinstance(engine, EmbedEngine):
            self.note = "the embed engine is not an embedder"
            return None
        self.engine, self.note = engine, ""
        return engine

    def start(self) -> None:
        """Begin loading in the background (no-op when loaded, loading or off)."""
        if self.engine is None and not self._off and self._task is None:
            self._task = asyncio.create_task(self._load())

    def warm(self) -> None:
        """Start loading ahead of the first search, unless this process answers once
        (cold starts off): it would exit only when the load ends, for nothing."""
        if self.cold_start:
            self.start()

    async def get(self, wait: float | None = None) -> EmbedEngine | None:
        """The engine, or None (keyword only). `wait`: at most this long for a cold start."""
        if self.engine is not None or self._off:
            return self.engine
        if wait is not None and self.cold:
            return None  # a search that cannot wait does not start the load here
        self.start()
        assert self._task is not None
        if wait is not None and not self._task.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._task), wait)
            if not self._task.done():
                return None
        return await asyncio.shield(self._task)

    def model(self) -> str | None:
        """The model key of the loaded engine (None before it is loaded)."""
        return model_key(self.engine) if self.engine is not None else None

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def embed(self, texts: Sequence[str]) -> list[list[float]] | None:
        """Vectors for texts, or None when no embedder is available (keyword only)."""
        engine = await self.get()
        if engine is None or not texts:
            return None
        # questions first: a search waits for its query vector, a stored text can wait
        await batcher_of(engine).quiet(self.yield_to_queries)
        try:
            return await engine.embed(list(texts))
        except Exception as exc:
            log.warning("embedding failed, stored without vectors (%s)", exc)
            return None

    def remember(self, query: str, vec: list[float]) -> None:
        """Cache `query`'s vector for the loaded model."""
        if self.engine is not None:
            batcher_of(self.engine).remember(query, vec)

    async def query_vector(self, query: str, wait: float) -> tuple[list[float] | None, str | None]:
        """(the query's vector, None) or (None, why: keyword only), within `wait` seconds.

        Through the engine's one `QueryBatcher`: memory and knowledge asking for the same
        question share one computation, and questions asked together are embedded in one
        call. A vector that comes after its search gave up is kept for the next ask."""
        if self._off:
            return None, None
        if self.cold:
            # A one-shot run recalls by keywords by design (loading the model would cost
            # more than the answer): the configured mode, not a degradation to warn about.
            return None, None
        started = time.perf_counter()
        engine = await self.get(wait=wait)
        if engine is None:
            if self.loading:
                return None, "embedder still loading; keyword search only"
            return None, (self.note or "no embedder") + "; keyword search only"
        batcher = batcher_of(engine)
        cached = batcher.cached(query)
        if cached is not None:
            return cached, None
        left = max(0.01, wait - (time.perf_counter() - started))
        try:
            vec = await asyncio.wait_for(asyncio.shield(batcher.submit(query)), left)
        except TimeoutError:
            return None, f"query embedding took over {wait:g}s; keyword only"
        except Exception as exc:
            return None, f"query embedding failed ({exc}); keyword search only"
        return vec, None
