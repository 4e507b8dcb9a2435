"""Postgres full-text ranking shared by the memory and knowledge keyword searches.

Both engines plan a query like their SQLite FTS5 paths do: each term's document
frequency first (a GIN count capped at `budget + 1`: the plan needs "small or not"),
then only the rarest terms whose matches fit the budget are ranked. This module
holds the two statements and the frequency cache; the engines own the plan.

The ranking statement scores a row by sum(idf(term) * ts_rank(weights, tsv, term)):
`ts_rank` alone has no IDF, so a common word would count as much as a rare one,
unlike BM25 on SQLite. The tsqueries sit in a one-row subquery with `OFFSET 0`, so
they are parsed once per statement: in the generic plan of a prepared statement
(asyncpg) an inlined `to_tsquery($1)` is re-parsed for every row (measured 7x slower).
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any

import sqlalchemy as sa

Read = Callable[[sa.TextClause], Awaitable[list[Any]]]


def idf(rows: int, df: int) -> float:
    """BM25's inverse document frequency (never negative)."""
    return math.log(1 + (rows - df + 0.5) / (df + 0.5))


class TermCounts:
    """Capped document frequencies per term, valid for `ttl` s or one `key` (generation)."""

    def __init__(self, table: str, ttl: float = 300.0) -> None:
        self.table = table
        self.ttl = ttl
        self.key: Hashable = None
        self._df: dict[str, tuple[int, float]] = {}
        self._rows: tuple[int, float] = (1, -math.inf)

    async def lookup(
        self, read: Read, terms: Sequence[str], cap: int, key: Hashable = None
    ) -> tuple[dict[str, int], int]:
        """({term: matches, at most cap}, rows in the table), one round trip when needed."""
        now = time.monotonic()
        if key != self.key or len(self._df) > 50_000:
            self.key, self._df = key, {}
        todo = [t for t in terms if t not in self._df or now - self._df[t][1] > self.ttl]
        if todo or now - self._rows[1] > self.ttl:
            cols = [
                f"(SELECT count(*) FROM (SELECT to_tsquery('english', :t{i}) AS q OFFSET 0) AS q, "
                f"LATERAL (SELECT 1 FROM {self.table} x WHERE x.tsv @@ q.q LIMIT :cap) AS m)"
                for i in range(len(todo))
            ]
            cols.append(
                "(SELECT greatest(reltuples, 1)::bigint FROM pg_class "
                f"WHERE oid = '{self.table}'::regclass)"
            )
            params: dict[str, Any] = {f"t{i}": t for i, t in enumerate(todo)}
            stmt = sa.text(f"SELECT {', '.join(cols)}").bindparams(cap=cap, **params)
            row = (await read(stmt))[0]
            for term, n in zip(todo, row[:-1], strict=True):
                self._df[term] = (int(n), now)
            self._rows = (max(1, int(row[-1] or 1)), now)
        return {t: self._df[t][0] for t in terms}, self._rows[0]


def ranked(
    terms: Sequence[str],
    freqs: dict[str, int],
    rows: int,
    *,
    candidates: str,
    weights: Sequence[float],
    params: dict[str, Any],
    limit: int,
    window: int | None,
) -> sa.TextClause:
    """The ranking statement: `(id, score)` best first, at most `limit` rows.

    `candidates` is `SELECT <id>, <tsv> FROM ... WHERE <tsv> @@ q.q AND <filters>`
    (its own params in `params`); `window`: rank only that many of its rows.
    `weights` are ts_rank's {D, C, B, A}.
    """
    w = "'{" + ", ".join(f"{float(x):g}" for x in weights) + "}'::float4[]"
    rows = max(rows, *(freqs[t] for t in terms))  # an estimate (never analyzed: 1)
    queries, scores = ["to_tsquery('english', :q) AS q"], []
    params.update(q=" | ".join(terms), k=limit)
    for i, term in enumerate(terms):
        params[f"t{i}"], params[f"f{i}"] = term, idf(rows, freqs[term])
        queries.append(f"to_tsquery('english', :t{i}) AS q{i}")
        scores.append(f":f{i} * ts_rank({w}, c.tsv, q.q{i})")
    cap = ""
    if window is not None:
        cap, params["n"] = " LIMIT :n", window
    return sa.text(
        f"SELECT c.id, {' + '.join(scores)} AS s "
        f"FROM (SELECT {', '.join(queries)} OFFSET 0) AS q, "
        f"LATERAL ({candidates}{cap}) AS c(id, tsv) "
        "ORDER BY s DESC, c.id DESC LIMIT :k"
    ).bindparams(**params)
