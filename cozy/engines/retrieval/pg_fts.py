"""Postgres full-text ranking shared by the memory and knowledge keyword searches.

Both engines plan a query like their SQLite FTS5 paths do: each term's document
frequency first (a GIN count capped at `budget + 1`: the plan needs "small or not"),
then only the rarest terms whose matches fit the budget are ranked. This module
holds the two statements; retrieval/keyword.py the plan and the frequency cache.

The ranking statement scores a row by sum(idf(term) * ts_rank(weights, tsv, term)):
`ts_rank` alone has no IDF, so a common word would count as much as a rare one,
unlike BM25 on SQLite. The tsqueries sit in a one-row subquery with `OFFSET 0`, so
they are parsed once per statement: in the generic plan of a prepared statement
(asyncpg) an inlined `to_tsquery($1)` is re-parsed for every row (measured 7x slower).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa


def idf(rows: int, df: int) -> float:
    """BM25's inverse document frequency (never negative)."""
    return math.log(1 + (rows - df + 0.5) / (df + 0.5))


def count_statement(table: str, terms: Sequence[str], cap: int) -> sa.TextClause:
    """One row: each term's matches in `table` (at most `cap`), then the table's row count."""
    cols = [
        f"(SELECT count(*) FROM (SELECT to_tsquery('english', :t{i}) AS q OFFSET 0) AS q, "
        f"LATERAL (SELECT 1 FROM {table} x WHERE x.tsv @@ q.q LIMIT :cap) AS m)"
        for i in range(len(terms))
    ]
    cols.append(
        f"(SELECT greatest(reltuples, 1)::bigint FROM pg_class WHERE oid = '{table}'::regclass)"
    )
    params: dict[str, Any] = {f"t{i}": t for i, t in enumerate(terms)}
    return sa.text(f"SELECT {', '.join(cols)}").bindparams(cap=cap, **params)


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
