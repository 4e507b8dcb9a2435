"""Query vectors under concurrency: memory and knowledge asking together share one
computation per question, questions asked together are embedded in few calls, and
each vector is the one the question gets alone (the real all-MiniLM-L6-v2)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence

import pytest

from cozy.engines.embed import model_files
from cozy.engines.embed.errors import EmbeddingUnavailable
from cozy.engines.embed.local import LocalEmbedder
from cozy.engines.retrieval.embedder import LazyEmbedder
from cozy.engines.retrieval.query_batch import batcher_of


def _installed() -> bool:
    try:
        model_files.locate(verify=False)
    except EmbeddingUnavailable:
        return False
    return True


pytestmark = pytest.mark.skipif(not _installed(), reason="all-MiniLM-L6-v2 not installed")


class Counting(LocalEmbedder):
    def __init__(self) -> None:
        super().__init__({})
        self.batches: list[int] = []

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.batches.append(len(texts))
        return await super().embed(texts)


def _close(a: Sequence[float], b: Sequence[float]) -> bool:
    return all(math.isclose(x, y, abs_tol=1e-4) for x, y in zip(a, b, strict=True))


async def test_concurrent_questions_are_batched_and_shared() -> None:
    engine = Counting()
    await engine.initialize()
    memory, knowledge = LazyEmbedder(None), LazyEmbedder(None)
    memory.use(engine)
    knowledge.use(engine)
    questions = [f"what did I say about topic number {i}?" for i in range(24)]
    asks = [e.query_vector(q, wait=60) for q in questions for e in (memory, knowledge)]
    got = await asyncio.gather(*asks)
    assert all(note is None and vec is not None for vec, note in got)
    # 48 asks, 24 questions: every question embedded once, in a few calls
    assert sum(engine.batches) == 24 and len(engine.batches) <= 3, engine.batches
    alone = await engine.embed([questions[5]])
    assert _close(got[10][0] or [], alone[0]) and _close(got[11][0] or [], alone[0])
    # asked again: from the cache, no call
    calls = len(engine.batches)
    vec, note = await knowledge.query_vector(questions[5], wait=60)
    assert note is None and vec == got[10][0] and len(engine.batches) == calls
    assert batcher_of(engine).calls == calls - 1  # the `alone` call went around it


class Slow(Counting):
    """Takes longer than the 10 ms a zero wait allows, however quiet the machine (the
    real model alone embeds a short question in under 10 ms on a quiet box)."""

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        await asyncio.sleep(0.5)
        return await super().embed(texts)


async def test_a_question_that_timed_out_is_kept_for_the_next_ask() -> None:
    engine = Slow()
    await engine.initialize()
    lazy = LazyEmbedder(None)
    lazy.use(engine)
    vec, note = await lazy.query_vector("a slow question", wait=0.0)
    assert vec is None and note and "keyword only" in note
    deadline = asyncio.get_running_loop().time() + 60
    while batcher_of(engine).cached("a slow question") is None:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)
    vec, note = await lazy.query_vector("a slow question", wait=0.0)
    assert vec is not None and note is None


async def test_a_failing_embedder_says_so_and_recovers() -> None:
    class Broken(Counting):
        fail = True

        async def embed(self, texts: Sequence[str]) -> list[list[float]]:
            if self.fail:
                raise OSError("model file vanished")
            return await super().embed(texts)

    engine = Broken()
    lazy = LazyEmbedder(None)
    lazy.use(engine)
    vec, note = await lazy.query_vector("hello", wait=30)
    assert vec is None and note and "model file vanished" in note
    engine.fail = False
    vec, note = await lazy.query_vector("hello", wait=30)
    assert vec is not None and note is None


class Logging(LocalEmbedder):
    """Logs when each embed call starts and ends, and whether it was a query batch."""

    def __init__(self) -> None:
        super().__init__({})
        self.log: list[tuple[str, str]] = []

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        kind = "stored" if texts[0].startswith("stored") else "query"
        self.log.append(("start", kind))
        try:
            return await super().embed(texts)
        finally:
            self.log.append(("end", kind))


async def _stored_while_questions_wait(yield_to_queries: float) -> list[tuple[str, str]]:
    engine = Logging()
    await engine.initialize()
    lazy = LazyEmbedder(None)
    lazy.use(engine)
    lazy.yield_to_queries = yield_to_queries
    questions = [f"question {i} about the garden and the trip to Lisbon?" for i in range(64)]
    asks = [asyncio.ensure_future(lazy.query_vector(q, wait=60)) for q in questions]
    for _ in range(100):  # a few loop turns: the query batch is submitted and started
        if engine.log:
            break
        await asyncio.sleep(0)
    assert engine.log == [("start", "query")]
    stored = await lazy.embed(["stored turn: I watered the tomatoes"])
    assert stored is not None and len(stored[0]) == 384
    got = await asyncio.gather(*asks)
    assert all(vec is not None and note is None for vec, note in got)
    return engine.log


async def test_stored_texts_wait_for_the_query_batch_in_flight() -> None:
    # a background turn embedding must not take the cores from the questions a
    # search is waiting for (#20: the memory engine's 0.3 s query-vector wait)
    log = await _stored_while_questions_wait(yield_to_queries=60.0)
    assert log == [("start", "query"), ("end", "query"), ("start", "stored"), ("end", "stored")]


async def test_without_the_wait_a_stored_text_runs_beside_the_queries() -> None:
    # the bound: after `yield_to_queries` s (here 0) the stored text goes anyway
    log = await _stored_while_questions_wait(yield_to_queries=0.0)
    assert log.index(("start", "stored")) < log.index(("end", "query"))
