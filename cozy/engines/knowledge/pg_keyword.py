"""Keyword retrieval for knowledge on Postgres: full-text search instead of SQLite FTS5.

The same signals and the same plan as the FTS5 path (knowledge/keyword.py):

- the stored `tsv` holds a chunk's heading at weight A and its text at weight B
  (migration step `0007_pg_tsvector_columns`); a heading match counts twice, as
  `bm25(2.0, 1.0)` does on SQLite;
- the query's informative words (`query_terms`), each word's document frequency
  (a GIN count capped at `budget + 1`, cached for one index generation), and all
  words when their matches fit the budget, else the rarest ones that do;
- one statement ranks the matching chunks in the caller's scope (user, collections,
  path prefix) by sum(idf(word) * ts_rank(weights, tsv, word)) and keeps the top
  `k` (cozy/storage/pg_fts.py). When even the rarest word is over budget, only
  `budget` of its matches are ranked.

The result feeds the same RRF fusion as BM25: only the order of the list matters.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

from cozy.engines.knowledge.index import KnowledgeIndex, like_prefix
from cozy.storage.pg_fts import TermCounts, ranked

_COUNTS: weakref.WeakKeyDictionary[KnowledgeIndex, TermCounts] = weakref.WeakKeyDictionary()
WEIGHTS = (0.0, 0.0, 0.5, 1.0)  # ts_rank's {D, C, B, A}: text (B) half of a heading (A)


async def pg_keyword_search(
    index: KnowledgeIndex,
    user_id: str,
    query: str,
    *,
    collections: Sequence[str] | None,
    prefix: str | None,
    k: int,
    budget: int = 10_000,
    generation: int = 0,
) -> list[tuple[int, float]]:
    """(chunk id, score: higher is better) best first, within the user's scope."""
    from cozy.engines.knowledge.keyword import plan, query_terms

    terms = query_terms(query)
    if not terms or k <= 0:
        return []
    counts = _COUNTS.get(index)
    if counts is None:
        counts = _COUNTS[index] = TermCounts("knowledge_chunks", ttl=float("inf"))
    freqs, rows = await counts.lookup(index.read, terms, budget + 1, key=generation)
    chosen = plan(freqs, budget)
    if not chosen.terms:
        return []
    params: dict[str, Any] = {"u": user_id}
    where = ["c.tsv @@ q.q", "c.user_id = :u"]
    join = ""
    if collections:
        names = []
        for i, name in enumerate(collections):
            params[f"c{i}"] = name
            names.append(f":c{i}")
        where.append(f"c.collection IN ({', '.join(names)})")
    if prefix:
        join = " JOIN knowledge_documents d ON d.id = c.document_id"
        params["p"] = like_prefix(prefix)
        where.append("d.path LIKE :p ESCAPE '\\'")
    sql = ranked(
        chosen.terms,
        freqs,
        rows,
        candidates=f"SELECT c.id, c.tsv FROM knowledge_chunks c{join} WHERE {' AND '.join(where)}",
        weights=WEIGHTS,
        params=params,
        limit=k,
        window=budget if chosen.window else None,
    )
    return [(int(r[0]), float(r[1])) for r in await index.read(sql)]
