"""One hybrid search: BM25 and vector candidates, fused by RRF, duplicates collapsed."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Sequence
from typing import Any

from cozy.core.errors import CozyError, EngineError
from cozy.core.types import KnowledgeHit
from cozy.engines.degraded import degraded
from cozy.engines.knowledge.parts import KnowledgeParts
from cozy.engines.knowledge.retrieval import Vectors, citation, fetch_chunks
from cozy.engines.retrieval.embedder import model_key
from cozy.engines.retrieval.fusion import best_first, rrf

NEAR_DUPLICATE = 0.97  # cosine above which two chunks count as the same passage


async def run_search(
    engine: KnowledgeParts,
    query: str,
    user_id: str,
    collections: Sequence[str] | None,
    prefix: str | None,
    limit: int,
    mode: str,
    wait: float | None,
    generation: int,
    embedding: float | None = None,
) -> list[KnowledgeHit]:
    """`wait`: at most this long for a cold embedder to load; `embedding`: at most this
    long for the query's vector once it has (default `vector_timeout`). Past either,
    a hybrid search answers from keywords and says why (`degraded()`)."""
    k = max(engine.candidates, limit * 4)
    notes: list[str] = []

    async def keyword_side() -> list[tuple[int, float]]:
        if mode not in ("hybrid", "bm25"):
            return []
        return await engine.keyword_search(query, user_id, collections, prefix, k, generation)

    vectors_now = vector_side(
        engine, query, user_id, collections, prefix, k, mode, wait, generation, notes,
        engine.vector_timeout if embedding is None else embedding,
    )  # fmt: skip
    # both retrievers at once: SQLite and numpy each run outside the GIL
    keyword, (semantic, vectors, partial) = await asyncio.gather(keyword_side(), vectors_now)
    lists = [found for found in (keyword, semantic) if found]
    fused = best_first(rrf(lists)) if len(lists) > 1 else list(keyword or semantic)
    ranks_bm = {c: i + 1 for i, (c, _) in enumerate(keyword)}
    ranks_vec = {c: i + 1 for i, (c, _) in enumerate(semantic)}
    sims = dict(semantic)
    head = fused[: limit * 4]
    rows = await fetch_chunks(engine.index, [c for c, _ in head])
    hits: list[KnowledgeHit] = []
    kept_hashes: set[str] = set()
    kept_vecs: list[Any] = []
    for cid, score in head:
        row = rows.get(cid)
        if row is None:
            continue  # deleted between the two queries
        if row["text_hash"] in kept_hashes:
            continue
        vec = vectors.vector(cid) if vectors is not None else None
        if vec is not None and any(float(vec @ v) >= NEAR_DUPLICATE for v in kept_vecs):
            continue
        kept_hashes.add(row["text_hash"])
        if vec is not None:
            kept_vecs.append(vec)
        hits.append(_hit(row, score, mode, ranks_bm.get(cid), ranks_vec.get(cid), sims.get(cid)))
        if len(hits) >= limit:
            break
    for hit in hits:
        if notes:
            hit.metadata["notes"] = notes
        if partial:
            hit.metadata["partial"] = True
    note = next((n for n in notes if "keywords only" in n), None)
    if note is not None:
        degraded(note)
    return hits


async def _or_keywords(query: Awaitable[Any], limit: float, notes: list[str]) -> Any | None:
    """The query's vector, or None (keywords only, noted) when the embedder fails or
    is slower than `limit` s: a dead or hung embedder must not take the keyword
    results down with it (as the README promises)."""
    try:
        async with asyncio.timeout(limit):
            return await query
    except TimeoutError:
        notes.append(f"embedder slower than {limit:g}s: keywords only")
    except (CozyError, OSError) as exc:
        notes.append(f"embedder failed ({exc}): keywords only")
    return None


async def vector_side(
    engine: KnowledgeParts,
    query: str,
    user_id: str,
    collections: Sequence[str] | None,
    prefix: str | None,
    k: int,
    mode: str,
    wait: float | None,
    generation: int,
    notes: list[str],
    embedding: float,
) -> tuple[list[tuple[int, float]], Vectors | None, bool]:
    """Vector candidates, the matrix they came from, and whether the result is partial
    (keywords only for a passing reason: a retry soon may do better, so do not cache)."""
    if mode not in ("hybrid", "vector"):
        return [], None, False
    embedder = await engine.embeddings.get(wait=wait if mode == "hybrid" else None)
    note = engine.embeddings.note
    if embedder is None:
        if mode == "vector":
            raise EngineError(
                "vector search needs an embedder",
                hint=note or "set `embed: {provider: local}` in engines.yaml",
            )
        if note:  # not configured or broken: the same answer next time
            notes.append(note)
            return [], None, False
        if not engine.embeddings.cold:  # a one-shot run is keywords by design (embedder.py)
            notes.append(
                f"the embedding model is still loading (waited {wait or 0:g}s): keywords only"
            )
        return [], None, True
    # the query's vector (where a remote embedder hangs) while the matrix is read
    qv_task = asyncio.ensure_future(query_vector(engine, query))
    model = model_key(embedder)
    vectors = await engine.vectors.get(
        engine.index, user_id, model, generation, embedder.dimensions
    )
    missing, total = vectors.without_vectors(collections)
    if missing:  # ingested, not embedded yet (the knowledge.embed job is on it)
        notes.append(
            f"{missing} of {total} chunks have no vector yet (being embedded in the background; "
            "`cozy knowledge embed` does it now): keywords only for those"
        )
    if not len(vectors):
        qv_task.cancel()
        qv_task.add_done_callback(lambda t: t.cancelled() or t.exception())  # seen, not logged
        return [], vectors, False
    if mode == "hybrid":  # the keywords alone still answer when the embedder cannot
        qv = await _or_keywords(qv_task, embedding, notes)
        if qv is None:
            return [], None, True
    else:
        qv = await qv_task
    found = await vectors.search_async(qv, collections=collections, prefix=prefix, k=k)
    return [(c, sim) for c, sim in found if sim >= engine.min_similarity], vectors, False


async def query_vector(engine: KnowledgeParts, query: str) -> Any:
    """The query's unit vector (the embedder's cache keeps repeated questions)."""
    import numpy as np

    vec, note = await engine.embeddings.query_vector(query.strip(), wait=3600.0)
    if vec is None:
        raise EngineError(f"the query could not be embedded: {note}")
    qv = np.asarray(vec, dtype=np.float32)
    return qv / (float(np.linalg.norm(qv)) or 1.0)


def _hit(
    row: dict[str, Any],
    score: float,
    mode: str,
    bm25_rank: int | None,
    vector_rank: int | None,
    similarity: float | None,
) -> KnowledgeHit:
    meta = {
        "document_id": row["document_id"],
        "collection": row["collection"],
        "path": row["path"],
        "title": row["title"],
        "kind": row["kind"],
        "heading": row["heading"],
        "line_start": row["line_start"],
        "line_end": row["line_end"],
        "page": row["page"],
        "symbol": row["symbol"],
        "mode": mode,
        "bm25_rank": bm25_rank,
        "vector_rank": vector_rank,
        "similarity": round(similarity, 4) if similarity is not None else None,
    }
    return KnowledgeHit(f"kc_{row['id']}", row["text"], round(score, 6), citation(row), meta)


def hit_dict(h: KnowledgeHit) -> dict[str, Any]:
    """A hit as the search cache stores it (`KnowledgeHit(**d)` reads it back)."""
    return {
        "id": h.id,
        "text": h.text,
        "score": h.score,
        "citation": h.citation,
        "metadata": h.metadata,
    }


def cache_key(
    user_id: str,
    query: str,
    collections: Sequence[str] | None,
    prefix: str | None,
    limit: int,
    mode: str,
    generation: int,
) -> str:
    """The search cache's key: everything that shapes the answer, and the scope's
    generation, so any write to the user's knowledge makes old entries unreachable."""
    body = json.dumps(
        [user_id, query.strip(), sorted(collections or []), prefix, limit, mode, generation]
    )
    return hashlib.sha1(body.encode()).hexdigest()
