"""Keyword retrieval for memories on Postgres: full-text search over the stored `tsv`.

`tsv` is a generated tsvector column with a GIN index (migration step
`0007_pg_tsvector_columns`), so matching uses the index and `ts_rank_cd` reads the
stored vector instead of re-parsing each row's text. The query's words (the same
`keyword_query` terms as the FTS5 path) are tried together first (`&`: few rows,
the best ones); only when that finds fewer than `limit`, any word (`|`) fills up,
ranked among at most `CAP` matches (in storage order: a bitmap scan, no sort) so
that a query of common words never ranks a whole big scope. The result feeds the
same hybrid fusion as BM25.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from cozy.engines.memory.search import keyword_query
from cozy.storage.store import Store

CAP = 2000


async def _ranked(
    store: Store, user_id: str, tsquery: str, limit: int, kinds: Sequence[str] | None, cap: int
) -> list[tuple[str, float]]:
    params: dict[str, Any] = {"q": tsquery, "u": user_id, "k": limit, "cap": cap}
    kind_sql = ""
    if kinds:
        kind_sql = " AND m.kind IN (" + ",".join(f":k{i}" for i in range(len(kinds))) + ")"
        params.update({f"k{i}": k for i, k in enumerate(kinds)})
    sql = sa.text(
        "SELECT c.id, ts_rank_cd(c.tsv, q.q) AS s FROM to_tsquery('english', :q) AS q(q), "
        "LATERAL (SELECT m.id, m.tsv FROM memories m WHERE m.user_id = :u "
        f"AND m.status = 'active' AND m.tsv @@ q.q{kind_sql} LIMIT :cap) c "
        "ORDER BY s DESC, c.id DESC LIMIT :k"
    )
    rows = await store._read(sql.bindparams(**params))
    return [(str(r[0]), float(r[1])) for r in rows]


async def pg_keyword(
    store: Store, user_id: str, query: str, limit: int, kinds: Sequence[str] | None = None
) -> list[tuple[str, float]]:
    """(memory id, ts_rank_cd) best first, active memories of this user only."""
    terms = [t for t in keyword_query(query).replace('"', "").split(" OR ") if t]
    if not terms or limit <= 0:
        return []
    best = await _ranked(store, user_id, " & ".join(terms), limit, kinds, CAP)
    if len(best) >= limit or len(terms) == 1:
        return best
    seen = {i for i, _ in best}
    more = await _ranked(store, user_id, " | ".join(terms), limit, kinds, CAP)
    return best + [(i, s) for i, s in more if i not in seen][: limit - len(best)]
