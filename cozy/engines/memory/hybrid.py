"""One hybrid search of memory.local: the keyword and vector candidate lists, the two
ranking stages around them (memory/stages.py, memory/rank.py), neighbouring turns,
the filters of what a caller may see, and the hits. `LocalMemory.search` is this.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

from cozy.core.types import MemoryHit
from cozy.engines.degraded import degraded
from cozy.engines.memory.parts import MemoryParts
from cozy.engines.memory.rank import answer_bonus
from cozy.engines.memory.repo import MemoryRow
from cozy.engines.memory.search import neighbours, recency_factor
from cozy.engines.memory.stages import first_stage, last_stage
from cozy.engines.memory.types import iso
from cozy.engines.retrieval.fusion import rrf


async def vector_list(
    mem: MemoryParts, user_id: str, query: str, version: int, pool: int, wait: float | None
) -> list[tuple[str, float]]:
    vec, note = await mem.query_vector(query, wait)
    if note:  # nothing degrades for a user with no memories
        degraded(note)
    if vec is None:
        return []
    from cozy.engines.retrieval.vectors import holds_gil  # numpy: only once vectors exist

    idx = await mem.index(user_id, version)
    if len(idx) < 20_000 or holds_gil():  # a thread would not free the loop (vectors.py)
        return idx.search(vec, pool)
    return await asyncio.to_thread(idx.search, vec, pool)  # big BLAS product: off the loop


# How long the event loop's thread waits, GIL released, for the SQLite worker to reach
# its FTS5 statement before the vector pass: the worker usually gets there 0.2 ms after
# the hop is submitted (100k memories); a descheduled worker on a busy box costs at
# most this, never a stall.
KEYWORD_HEAD_START = 0.001


async def both_lists(
    mem: MemoryParts,
    user_id: str,
    query: str,
    version: int,
    pool: int,
    kinds: Sequence[str] | None,
    wait: float | None,
) -> list[list[tuple[str, float]]]:
    """The keyword and vector lists, the FTS5 query running beside the vector pass.

    numkong's int8 kernel holds the GIL (retrieval/vectors.py `holds_gil`), so the
    vector pass runs on this thread, and a worker thread that has not reached SQLite
    (whose statement releases the GIL) when the pass starts waits for all of it. With
    `gather` that was left to the OS scheduler; here the keyword search is submitted
    first and this thread waits (bounded) until the worker is at its statement.
    """
    started = threading.Event()
    keyword = asyncio.ensure_future(mem.repo.keyword(user_id, query, pool, kinds, started))
    try:
        await asyncio.sleep(0)  # the task runs up to its hop: the work is in the pool
        if mem.repo.store.sqlite_thread is not None:
            started.wait(KEYWORD_HEAD_START)  # blocking on purpose: frees the GIL
        vec = await vector_list(mem, user_id, query, version, pool, wait)
    except BaseException:
        keyword.cancel()
        raise
    return [await keyword, vec]


async def search(
    mem: MemoryParts,
    query: str,
    *,
    user_id: str,
    limit: int = 5,
    kinds: Sequence[str] | None = None,
    personality_id: str | None = None,
    exclude_session: str | None = None,
    mode: str = "hybrid",
    candidates: int = 50,
    vector_wait: float | None = None,
    min_similarity: float | None = None,
) -> list[MemoryHit]:
    """`min_similarity`: keep only memories that share a word with the query or
    whose meaning is at least this close (cosine); fused ranks alone always
    return something, related or not."""
    hits: list[MemoryHit] = []
    if not query.strip():
        return hits
    pool = max(candidates, limit * 4)
    version = await mem.version(user_id)
    if version == 0 and await mem.version(user_id, fresh=True) == 0:
        return hits  # no memories yet (checked afresh: another process may have written)
    found: list[list[tuple[str, float]]]
    if mode == "hybrid":
        found = await both_lists(mem, user_id, query, version, pool, kinds, vector_wait)
    else:
        jobs: list[Any] = []
        if mode == "keyword":
            jobs.append(mem.repo.keyword(user_id, query, pool, kinds))
        if mode == "vector":
            jobs.append(vector_list(mem, user_id, query, version, pool, vector_wait))
        found = list(await asyncio.gather(*jobs))
    related = related_ids(found, mode, min_similarity)
    cosine = dict(found[-1]) if mode in ("hybrid", "vector") else {}
    lists = [x for x in found if x]
    staged = mode == "hybrid" and len(lists) == 2  # the second stage: memory/rank.py
    if staged:
        kw, vec = lists
        fused, rows = await first_stage(mem, user_id, query, version, kw, vec, pool)
    else:
        fused, rows = rrf(lists, k=mem.rrf_k), {}
    if not fused:
        return hits
    ranked = sorted(fused, key=lambda m: -fused[m])
    if not staged:
        rows = await mem.rows_of(user_id, version, ranked[: limit * 3 + 10])
    if mem.neighbour_spread > 0 and mode == "hybrid":
        ranked, rows = await spread(mem, user_id, fused, ranked, rows, limit)
    if staged:
        ranked = await last_stage(mem, user_id, version, fused, rows)
    scored: list[tuple[float, MemoryRow]] = []
    start = 0
    while len(scored) < limit and start < len(ranked):
        batch = ranked[start : start + max(limit * 3, 16)]
        missing = [m for m in batch if m not in rows]
        if missing:
            rows.update(await mem.rows_of(user_id, version, missing))
        scored += [
            (fused[m] * recency_factor(rows[m].occurred_at, mem.half_life), rows[m])
            for m in batch
            if m in rows
            and visible(mem, rows[m], kinds, personality_id, exclude_session)
            and (related is None or m in related)
        ]
        start += len(batch)
    scored.sort(key=lambda x: -x[0])
    for score, row in scored[:limit]:
        hits.append(
            MemoryHit(
                id=row.id,
                text=row.text,
                score=round(score, 6),
                source_message_ids=row.source_message_ids,
                created_at=iso(row.created_at),
                metadata={
                    "kind": row.kind,
                    "session_id": row.session_id,
                    "occurred_at": row.occurred_at,
                    "similarity": round(cosine[row.id], 4) if row.id in cosine else None,
                },
            )
        )
    return hits


def visible(
    mem: MemoryParts,
    row: MemoryRow,
    kinds: Sequence[str] | None,
    personality_id: str | None,
    exclude_session: str | None,
) -> bool:
    if row.status != "active" or (kinds is not None and row.kind not in kinds):
        return False
    if (
        personality_id
        and mem.scope == "personality"
        and row.personality_id not in (None, personality_id)
    ):
        return False
    # turns of the current session are already in the prompt as recent history
    return not (exclude_session and row.kind == "turn" and row.session_id == exclude_session)


async def spread(
    mem: MemoryParts,
    user_id: str,
    fused: dict[str, float],
    ranked: list[str],
    rows: dict[str, MemoryRow],
    limit: int,
) -> tuple[list[str], dict[str, MemoryRow]]:
    """Turns next to a strong hit share its score (answers follow questions)."""
    top = [m for m in ranked[: limit * 2] if m in rows and rows[m].kind == "turn"]
    links: dict[str, list[str]] = {}
    legacy: set[str | None] = set()
    for m in top:
        meta = rows[m].metadata
        if "prev" in meta:
            links[m] = [x for x in (meta.get("prev"), meta.get("next")) if x]
        elif rows[m].session_id:
            legacy.add(rows[m].session_id)
    if legacy:  # turns indexed before neighbour links: positions from the table
        order = await mem.repo.turn_order(user_id, legacy)
        by_pos = {pos: mid for mid, pos in order.items()}
        for m in top:
            if m in order:
                links[m] = [x for d in (-1, 1) if (x := by_pos.get(order[m] + d))]
    if not links:
        return ranked, rows
    neighbours(top, fused, links, mem.neighbour_spread)
    ranked = sorted(fused, key=lambda m: -fused[m])
    if mem.rank_weights.answer > 0:  # then the turns after the strongest questions
        asked = [m for m in ranked[: limit * 2] if m in rows and rows[m].kind == "turn"]
        for mid, gain in answer_bonus(asked, fused, rows, mem.rank_weights.answer).items():
            fused[mid] = fused.get(mid, 0.0) + gain
        ranked = sorted(fused, key=lambda m: -fused[m])
    return ranked, rows


def related_ids(
    found: Sequence[list[tuple[str, float]]], mode: str, min_similarity: float | None
) -> set[str] | None:
    """The ids a thresholded search may return (None: no threshold)."""
    if min_similarity is None or min_similarity <= 0:
        return None
    keyword = found[0] if mode in ("hybrid", "keyword") else []
    vector = found[-1] if mode in ("hybrid", "vector") else []
    return {m for m, _ in keyword} | {m for m, cos in vector if cos >= min_similarity}
