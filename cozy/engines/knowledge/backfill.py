"""Vectors for the chunks that have none from the current model, written in batches.

Chunks are keyword-searchable as soon as ingestion writes them; their vectors come
after (`cozy knowledge add` waiting for them, or the durable `knowledge.embed` job),
one transaction per batch, so each batch is searchable by vector once committed.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from cozy.engines.base import EmbedEngine
from cozy.engines.knowledge.index import KnowledgeIndex
from cozy.engines.knowledge.ingest import OnVectors, vectors_to_bytes
from cozy.engines.retrieval.embedder import model_key

# chunks embedded per transaction by `embed_pending`: at ~25 chunks/s a few seconds
# of work, so progress moves steadily and an interrupted run loses little
EMBED_BATCH = 128


async def embed_pending(
    index: KnowledgeIndex,
    engine: EmbedEngine,
    user_id: str,
    collection: str | None,
    *,
    on_batch: Callable[[], Awaitable[None]],
    on_vectors: OnVectors | None = None,
    budget: float | None = None,
) -> int:
    """Embed the user's chunks still without a vector from `engine`'s model (`on_batch`
    after each committed batch). Returns how many are left: 0, or more when `budget`
    seconds ran out (after one batch at least)."""
    if not engine.dimensions:  # a remote embedder: its dimensions are part of the key
        await engine.embed(["dimensions"])
    model = model_key(engine)
    total = sum((await index.count_unembedded(user_id, model, collection)).values())
    started, done, after = time.monotonic(), 0, 0
    while done < total:
        if done and budget is not None and time.monotonic() - started > budget:
            break  # (one batch at least: every run makes progress)
        batch = await index.unembedded_chunks(
            user_id, model, collection=collection, after=after, limit=EMBED_BATCH
        )
        if not batch:
            break
        after = batch[-1][0]
        vectors = vectors_to_bytes(await engine.embed([text for _, text in batch]))
        items = [(cid, vec) for (cid, _), vec in zip(batch, vectors, strict=True)]
        await index.set_vectors(user_id, items, model)
        await on_batch()
        done += len(batch)
        if on_vectors is not None:
            on_vectors(done, total)
    return max(0, total - done)
