"""Keyword retrieval for knowledge on Postgres: full-text search instead of SQLite FTS5.

The query's informative words (same `query_terms` as the FTS5 path) are joined into
one `tsquery`; rows match through the GIN index on the stored `tsv` column (added
by the migration step `0007_pg_tsvector_columns`: heading weight A, text B, so a
heading match counts more), and are ranked with `ts_rank` over that column. All
words together (`&`) are tried first; only when that finds fewer than `k`, any word
(`|`) fills up, ranked among at most `CAP` matches (in storage order: a bitmap
scan, no sort) so that a query of common words never ranks a whole big collection.
The result feeds the same RRF fusion as BM25 does: only the order of the list
matters there, not the scale of the score.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from cozy.engines.knowledge.index import KnowledgeIndex, like_prefix

CAP = 2000


def ts_query(terms: Sequence[str], op: str = "|") -> str | None:
    """`to_tsquery` input: the words joined by `op` (words are `\\w+`: no tsquery syntax)."""
    return f" {op} ".join(terms) if terms else None


async def pg_keyword_search(
    index: KnowledgeIndex,
    user_id: str,
    query: str,
    *,
    collections: Sequence[str] | None,
    prefix: str | None,
    k: int,
) -> list[tuple[int, float]]:
    """(chunk id, ts_rank) best first, within the user's scope."""
    from cozy.engines.knowledge.keyword import query_terms

    terms = query_terms(query)
    if not terms or k <= 0:
        return []
    scope = (index, user_id, collections, prefix, k)
    best = await _ranked(*scope, ts_query(terms, "&") or "")
    if len(best) >= k or len(terms) == 1:
        return best
    seen = {i for i, _ in best}
    more = await _ranked(*scope, ts_query(terms, "|") or "")
    return best + [(i, s) for i, s in more if i not in seen][: k - len(best)]


async def _ranked(
    index: KnowledgeIndex,
    user_id: str,
    collections: Sequence[str] | None,
    prefix: str | None,
    k: int,
    tsquery: str,
) -> list[tuple[int, float]]:
    params: dict[str, Any] = {"q": tsquery, "u": user_id, "k": k, "cap": CAP}
    where = ["c.user_id = :u", "c.tsv @@ q.q"]
    join = ""
    if collections:
        names = []
        for i, name in enumerate(collections):
            params[f"c{i}"] = name
            names.append(f":c{i}")
        where.append(f"c.collection IN ({', '.join(names)})")
    if prefix:
        join = "JOIN knowledge_documents d ON d.id = c.document_id"
        params["p"] = like_prefix(prefix)
        where.append("d.path LIKE :p ESCAPE '\\'")
    sql = (
        "SELECT m.id, ts_rank(m.tsv, q.q) AS s FROM to_tsquery('english', :q) AS q(q), "
        f"LATERAL (SELECT c.id, c.tsv FROM knowledge_chunks c {join} "
        f"WHERE {' AND '.join(where)} LIMIT :cap) m "
        "ORDER BY s DESC, m.id DESC LIMIT :k"
    )
    rows = await index._read(sa.text(sql), params)
    return [(int(r[0]), float(r[1])) for r in rows]
