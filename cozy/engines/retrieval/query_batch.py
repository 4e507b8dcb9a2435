"""Query vectors of one embed engine, shared by every engine that searches with it.

Memory and knowledge each ask for the vector of the same question; under load a
hundred questions arrive together. Here a question is embedded once (an LRU of recent
vectors, and one computation in flight per question, awaited by every asker) and the
questions that arrive while a batch is being computed go together in the next call:
one forward pass over 32 short questions costs a fraction of 32 passes, and only one
call runs at a time, so queries never compete with each other for the cores.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from array import array
from collections import OrderedDict
from typing import Any

QUERY_CACHE = 512
MAX_BATCH = 64


class QueryBatcher:
    def __init__(self, engine: Any, size: int = QUERY_CACHE, max_batch: int = MAX_BATCH) -> None:
        self.engine = engine
        self.size = size
        self.max_batch = max_batch
        self._cache: OrderedDict[str, array[float]] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[list[float]]] = {}
        self._queue: list[str] = []
        self._task: asyncio.Task[None] | None = None
        self.calls = 0  # embed calls made (benches, tests)

    def cached(self, query: str) -> list[float] | None:
        vec = self._cache.get(query)
        if vec is None:
            return None
        self._cache.move_to_end(query)
        return vec.tolist()

    def remember(self, query: str, vec: list[float]) -> None:
        # float32 (1.5 KiB), not a list of Python floats (8.7 KiB): the cache is the
        # largest thing a server's heap gains per new question (tracemalloc, #20)
        self._cache[query] = array("f", vec)
        self._cache.move_to_end(query)
        while len(self._cache) > self.size:
            self._cache.popitem(last=False)

    def submit(self, query: str) -> asyncio.Future[list[float]]:
        """The vector's future: shared by everyone asking for this query meanwhile."""
        fut = self._inflight.get(query)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            # an asker that gave up (timeout) never reads it: no "never retrieved" warning
            fut.add_done_callback(lambda f: f.cancelled() or f.exception())
            self._inflight[query] = fut
            self._queue.append(query)
            if self._task is None or self._task.done():
                self._task = asyncio.get_running_loop().create_task(self._drain())
        return fut

    async def quiet(self, limit: float) -> None:
        """Return once no query is queued or being embedded, or after `limit` s.

        Stored texts (turns, memories) wait here before they are embedded: on a busy
        server their batches took the cores from the query batches a search waits
        for (0.3 s), and the searches fell back to keywords. `limit` keeps a stream of
        questions from holding the background work back for ever."""
        task = self._task
        if task is None or task.done() or limit <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), limit)

    async def _drain(self) -> None:
        await asyncio.sleep(0)  # the questions of this loop turn join the first batch
        while self._queue:
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            self.calls += 1
            try:
                vectors = await self.engine.embed(batch)
            except BaseException as exc:
                for q in batch:
                    fut = self._inflight.pop(q, None)
                    if fut is not None and not fut.done():
                        fut.set_exception(exc if isinstance(exc, Exception) else RuntimeError(exc))
                if not isinstance(exc, Exception):
                    raise
                continue
            for q, vec in zip(batch, vectors, strict=True):
                self.remember(q, vec)
                fut = self._inflight.pop(q, None)
                if fut is not None and not fut.done():
                    fut.set_result(vec)


_batchers: weakref.WeakKeyDictionary[Any, QueryBatcher] = weakref.WeakKeyDictionary()
_by_id: dict[int, QueryBatcher] = {}  # engines that can be neither weakly keyed nor hashed


def batcher_of(engine: Any) -> QueryBatcher:
    """The one batcher of an embed engine instance (memory's and knowledge's alike)."""
    try:
        found = _batchers.get(engine)
        if found is None:
            found = _batchers[engine] = QueryBatcher(engine)
        return found
    except TypeError:
        found = _by_id.get(id(engine))
        if found is None or found.engine is not engine:
            found = _by_id[id(engine)] = QueryBatcher(engine)
        return found
