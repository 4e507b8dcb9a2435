"""Keyword retrieval for memories on Postgres: full-text search, planned like the FTS5 path.

The same signals as SQLite FTS5 (memory/keyword.py): the stored `tsv` holds a memory's
own text at weight A and its neighbouring turns (`context`) at weight B (migration
step `0009_pg_memory_context_tsv`), and B counts `context_weight` of A in the rank.
Like BM25, a rare word counts more than a common one (IDF).

Ranking cost is one `ts_rank` per matching row, so a query is planned the same way:

1. the query's informative words (`query_terms`);
2. each word's document frequency, a count through the GIN index capped at
   `budget + 1` rows (a plan needs to know "small or not"), cached for `ttl` s;
3. words are kept from the rarest up while their matches stay within `budget`;
4. one statement: the rows matching any kept word (GIN bitmap), filtered by user,
   status and kind, each ranked by sum(idf(word) * ts_rank(weights, tsv, word)),
   top `limit`. When even the rarest word matches more than `budget` rows, only
   `budget` of its matches are ranked (the GIN bitmap's order: no sort).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cozy.engines.memory.keyword import plan
from cozy.engines.memory.search import query_terms
from cozy.storage.pg_fts import TermCounts, ranked
from cozy.storage.store import Store


class PgKeywords:
    def __init__(
        self, store: Store, *, context_weight: float = 0.35, budget: int = 5000, ttl: float = 300
    ) -> None:
        self.store = store
        self.context_weight = context_weight
        self.budget = budget
        self.counts = TermCounts("memories", ttl)

    async def search(
        self, user_id: str, query: str, limit: int, kinds: Sequence[str] | None = None
    ) -> list[tuple[str, float]]:
        """(memory id, score: higher is better) best first, active memories of this user."""
        terms = query_terms(query)
        if not terms or limit <= 0:
            return []
        freqs, rows = await self.counts.lookup(self.store.read, terms, self.budget + 1)
        chosen = plan(freqs, self.budget)
        if not chosen.terms:
            return []
        params: dict[str, Any] = {"u": user_id}
        where = "m.tsv @@ q.q AND m.user_id = :u AND m.status = 'active'"
        if kinds:
            where += " AND m.kind IN (" + ",".join(f":k{i}" for i in range(len(kinds))) + ")"
            params.update({f"k{i}": k for i, k in enumerate(kinds)})
        sql = ranked(
            chosen.terms,
            freqs,
            rows,
            candidates=f"SELECT m.id, m.tsv FROM memories m WHERE {where}",
            weights=(0.0, 0.0, self.context_weight, 1.0),  # context (B) vs text (A)
            params=params,
            limit=limit,
            window=self.budget if chosen.window else None,
        )
        return [(str(r[0]), float(r[1])) for r in await self.store.read(sql)]
