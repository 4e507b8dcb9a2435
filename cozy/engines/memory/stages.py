"""The two ranking stages of `LocalMemory.search` around its candidate lists: fusion
with the feedback search and query matches first, the session signal last (the
scoring itself is memory/rank.py)."""

from __future__ import annotations

import asyncio

from cozy.engines.memory.parts import MemoryParts
from cozy.engines.memory.rank import (
    Ranked,
    Weights,
    boost_query_matches,
    boost_sessions,
    feedback_vector,
)
from cozy.engines.memory.repo import MemoryRow
from cozy.engines.retrieval.fusion import rrf


async def first_stage(
    mem: MemoryParts,
    user_id: str,
    query: str,
    version: int,
    keyword: Ranked,
    vector: Ranked,
    pool: int,
) -> tuple[dict[str, float], dict[str, MemoryRow]]:
    """Fusion of the two lists (the vector one after feedback) and the query matches.

    Returns the fused scores and the rows of every candidate.
    """
    w: Weights = mem.rank_weights
    weights = [mem.keyword_weight, 1.0]
    fused = rrf([keyword, vector], weights=weights, k=mem.rrf_k)

    async def feedback() -> Ranked | None:
        """The vector list of a second search with the feedback vector (None: no feedback)."""
        if w.feedback <= 0 or not vector or w.feedback_docs <= 0:
            return None
        first = sorted(fused, key=lambda m: -fused[m])[: w.feedback_docs]
        vec, _note = await mem.query_vector(query)  # cached by the first search
        if vec is None:
            return None
        from cozy.engines.retrieval.vectors import holds_gil  # numpy: only once vectors exist

        idx = await mem.index(user_id, version)  # the hits' vectors: from the index, no SQL
        hits = [v for m in first if (v := idx.vector(m)) is not None]
        moved = feedback_vector(vec, hits, w.feedback)
        if moved is None:
            return None
        # a big index scores the moved vector over the first search's shortlist and the
        # hits only (search.py): a fraction of a millisecond, as a small index's search
        if len(idx) < 20_000 or idx.shortlisted(vec) or holds_gil():
            found = idx.search(moved, pool, near=vec, also=first)
        else:
            found = await asyncio.to_thread(idx.search, moved, pool, near=vec, also=first)
        # the rows of every candidate (keyword + feedback lists) are needed next: one read
        await mem.rows_of(user_id, version, list(dict.fromkeys(m for m, _ in (*keyword, *found))))
        return found

    again = await feedback()
    if again is not None:
        fused = rrf([keyword, again or vector], weights=weights, k=mem.rrf_k)
    rows = await mem.rows_of(user_id, version, list(fused))  # one read for every candidate
    boost_query_matches(fused, rows, query, w)  # a row has a Candidate's fields
    return fused, rows


async def last_stage(
    mem: MemoryParts,
    user_id: str,
    version: int,
    fused: dict[str, float],
    rows: dict[str, MemoryRow],
) -> list[str]:
    """The session signal over every candidate (neighbours added by spreading too)."""
    if mem.rank_weights.session > 0:
        missing = [m for m in fused if m not in rows]
        if missing:
            rows.update(await mem.rows_of(user_id, version, missing))
        sessions = {m: rows[m].session_id for m in fused if m in rows}
        boost_sessions(fused, sessions, mem.rank_weights)
    return sorted(fused, key=lambda m: -fused[m])
