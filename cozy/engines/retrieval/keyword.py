"""Keyword retrieval for memory and knowledge: one index over SQLite FTS5 or Postgres.

On SQLite a row is ranked by BM25 (`bm25()` of FTS5, per-column weights); on Postgres
by sum(idf(word) * ts_rank(weights, tsv, word)) (retrieval/pg_fts.py). Either way a
query is planned first, because ranking costs one score per matching row:

1. its informative words (`retrieval/terms.py`);
2. each word's document frequency (FTS5: `count(*)`, no ranking; Postgres: a GIN count
   capped at `budget + 1`), cached per scope version or for `ttl` seconds (a plan needs
   the order of magnitude, not the exact count);
3. words are kept from the rarest up while their matches stay within `budget`; a
   common word left out has a low IDF and would hardly move the ranking;
4. when even the rarest word matches more than `budget` rows, only `budget` of its
   matches are ranked (FTS5: the newest; Postgres: the GIN bitmap's order).

The engines differ only in their table (`KeywordTable`) and their filters (`Filter`:
user, status and kind for memories; user, collections and path prefix for chunks).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cozy.core.errors import EngineError
from cozy.engines.retrieval.terms import match_expr

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from cozy.storage.store_base import StoreBase


@dataclass(slots=True)
class Plan:
    terms: list[str]
    matches: int  # upper bound of the rows the terms match (sum of their frequencies)
    window: bool  # the rarest term alone is over budget: rank only some of its matches


def plan(freqs: dict[str, int], budget: int) -> Plan:
    """Which terms to rank with, given each term's document frequency."""
    found = sorted((n, t) for t, n in freqs.items() if n > 0)
    kept: list[str] = []
    matches = 0
    for n, term in found:
        if kept and matches + n > budget:
            break
        kept.append(term)
        matches += n
    return Plan(kept, matches, matches > budget)


class TermCounts:
    """Document frequencies per term, valid for one `key` (a scope version) and `ttl` s."""

    def __init__(self, ttl: float = 300.0) -> None:
        self.ttl = ttl
        self.key: Hashable = None
        self.rows: tuple[int, float] = (1, -math.inf)  # rows in the table (Postgres), when
        self._df: dict[str, tuple[int, float]] = {}

    def known(self, terms: Sequence[str], key: Hashable = None) -> dict[str, int]:
        """The cached frequencies of `terms` (not older than `ttl`, of this `key`)."""
        if key != self.key or len(self._df) > 50_000:
            self.key, self._df = key, {}
        now = time.monotonic()
        hits = {t: self._df[t] for t in terms if t in self._df}
        return {t: n for t, (n, at) in hits.items() if now - at <= self.ttl}

    def remember(self, counted: dict[str, int]) -> None:
        now = time.monotonic()
        self._df.update({t: (n, now) for t, n in counted.items()})

    def rows_stale(self) -> bool:
        return time.monotonic() - self.rows[1] > self.ttl


@dataclass(frozen=True, slots=True)
class KeywordTable:
    """Where an engine's searchable text lives."""

    table: str  # the rows: "memories", "knowledge_chunks"
    alias: str  # its alias in `Filter.where`
    fts: str  # the FTS5 table (SQLite), its rowid = the row's `fts_key`
    fts_key: str  # "rowid" or "id"


@dataclass(slots=True)
class Filter:
    """Which rows count: SQL conditions on the table's alias, with their `:name` params
    (the same text runs on SQLite and Postgres)."""

    where: list[str]
    params: dict[str, Any] = field(default_factory=dict)
    join: str = ""  # e.g. " JOIN knowledge_documents d ON d.id = c.document_id"


class KeywordIndex:
    """`search(terms, limit, scope)` over one table, on SQLite or Postgres."""

    def __init__(
        self,
        store: StoreBase,
        table: KeywordTable,
        *,
        fts_weights: Sequence[float],
        pg_weights: Sequence[float],
        budget: int,
        ttl: float = 300.0,
    ) -> None:
        self.store = store
        self.table = table
        self.fts_weights = tuple(fts_weights)  # bm25() per FTS5 column
        self.pg_weights = tuple(pg_weights)  # ts_rank's {D, C, B, A}
        self.budget = budget
        self.counts = TermCounts(ttl)
        self.dialect = store.engine.dialect.name
        if self.dialect not in ("sqlite", "postgresql"):
            raise EngineError(
                f"keyword search does not support {self.dialect}",
                hint="use SQLite (the default) or Postgres (COZY_DATABASE_URL=postgresql://...)",
            )

    async def search(
        self,
        terms: Sequence[str],
        limit: int,
        scope: Filter,
        *,
        version: Hashable = None,
        started: threading.Event | None = None,
    ) -> list[tuple[Any, float]]:
        """(row id, score: higher is better), best first, at most `limit`.

        `version`: the scope's version; cached document frequencies of another are dropped.
        `started`: set once the ranking statement is about to run (SQLite: in the worker
        thread, which then releases the GIL inside FTS5), or at once when there is none.
        """
        if not terms or limit <= 0 or self.dialect == "postgresql":
            if started is not None:
                started.set()  # nothing runs in a worker thread to wait for
            if not terms or limit <= 0:
                return []
            return await self._pg_search(terms, limit, scope, version)
        known = self.counts.known(terms, version)
        todo = [t for t in terms if t not in known]
        counted: dict[str, int] = {}

        def run(conn: Connection) -> list[Any]:  # one thread hop: counts and ranking
            counted.update(self._count(conn, todo))
            chosen = plan({**known, **counted}, self.budget)
            if started is not None:
                started.set()
            return self._ranked(conn, chosen, limit, scope)

        rows = await self.store.read_with(run)
        self.counts.remember(counted)  # on the event loop: the cache is not shared with threads
        return [(r[0], -float(r[1])) for r in rows]

    # --- SQLite FTS5 ------------------------------------------------------------
    def _count(self, conn: Connection, terms: Sequence[str]) -> dict[str, int]:
        """Document frequencies of `terms`, one statement for all of them."""
        if not terms:
            return {}
        fts = self.table.fts
        cols = ", ".join(
            f"(SELECT count(*) FROM {fts} WHERE {fts} MATCH :t{i})" for i in range(len(terms))
        )
        params = {f"t{i}": f'"{t}"' for i, t in enumerate(terms)}
        row = conn.exec_driver_sql(f"SELECT {cols}", params).one()
        return {t: int(n) for t, n in zip(terms, row, strict=True)}

    def _ranked(self, conn: Connection, chosen: Plan, limit: int, scope: Filter) -> list[Any]:
        match = match_expr(chosen.terms)
        if match is None:
            return []
        t, fts = self.table, self.table.fts
        params: dict[str, Any] = {**scope.params, "q": match, "k": limit}
        inner = [f"{fts} MATCH :q"]
        if chosen.window:
            floor = conn.exec_driver_sql(
                f"SELECT rowid FROM {fts} WHERE {fts} MATCH :q "
                "ORDER BY rowid DESC LIMIT 1 OFFSET :b",
                {"q": match, "b": self.budget},
            ).first()
            if floor is not None:
                params["floor"] = int(floor[0])
                inner.append("rowid >= :floor")
        weights = ", ".join(f"{w:g}" for w in self.fts_weights)
        where = " AND ".join(scope.where) or "1"

        def sql(capped: bool) -> str:
            """SQLite's own SQL, run with `exec_driver_sql`: SQLAlchemy's compile and cache-key
            walk of a text() with bind parameters cost 0.1 ms a statement (measured at 10k)."""
            cap = " LIMIT :n" if capped else ""
            match_where = " AND ".join(inner if capped else inner[:1])
            # bm25() called directly: the same scores as `rank MATCH 'bm25(...)'` and
            # `ORDER BY rank`, a quarter to a third faster (measured on FTS5 at 100k rows)
            return (
                f"SELECT {t.alias}.id, f.score FROM (SELECT rowid, bm25({fts}, {weights}) "
                f"AS score FROM {fts} WHERE {match_where} ORDER BY score{cap}) AS f "
                f"JOIN {t.table} {t.alias} ON {t.alias}.{t.fts_key} = f.rowid{scope.join} "
                f"WHERE {where} ORDER BY f.score LIMIT :k"
            )

        # the best 2 x limit matches first: enough when nearly every match is in scope
        # (one user per store, the local default); each joined match costs a row read
        # (100k memories: 2.7-3.0 ms at 2 x 50 against 3.5-3.7 ms at 200). Then 200
        # (4 x limit), then every match. The answer is the same either way.
        rows: list[Any] = []
        for n in dict.fromkeys((2 * limit, max(4 * limit, 200))):
            params["n"] = n
            rows = list(conn.exec_driver_sql(sql(True), params).fetchall())
            if len(rows) >= limit or chosen.matches <= n:
                break
        if len(rows) < limit and chosen.matches > params["n"]:  # filtered out: look further
            params.pop("n")
            params.pop("floor", None)
            rows = list(conn.exec_driver_sql(sql(False), params).fetchall())
        return rows

    # --- Postgres ---------------------------------------------------------------
    async def _pg_counts(
        self, terms: Sequence[str], version: Hashable
    ) -> tuple[dict[str, int], int]:
        from cozy.engines.retrieval.pg_fts import count_statement

        known = self.counts.known(terms, version)
        todo = [t for t in terms if t not in known]
        if todo or self.counts.rows_stale():
            stmt = count_statement(self.table.table, todo, self.budget + 1)
            row = (await self.store.read(stmt))[0]
            counted = {t: int(n) for t, n in zip(todo, row[:-1], strict=True)}
            self.counts.remember(counted)
            self.counts.rows = (max(1, int(row[-1] or 1)), time.monotonic())
            known.update(counted)
        return {t: known[t] for t in terms}, self.counts.rows[0]

    async def _pg_search(
        self, terms: Sequence[str], limit: int, scope: Filter, version: Hashable
    ) -> list[tuple[Any, float]]:
        from cozy.engines.retrieval.pg_fts import ranked

        freqs, rows = await self._pg_counts(terms, version)
        chosen = plan(freqs, self.budget)
        if not chosen.terms:
            return []
        a = self.table.alias
        where = " AND ".join([f"{a}.tsv @@ q.q", *scope.where])
        sql = ranked(
            chosen.terms,
            freqs,
            rows,
            candidates=f"SELECT {a}.id, {a}.tsv FROM {self.table.table} {a}{scope.join} "
            f"WHERE {where}",
            weights=self.pg_weights,
            params=dict(scope.params),
            limit=limit,
            window=self.budget if chosen.window else None,
        )
        return [(r[0], float(r[1])) for r in await self.store.read(sql)]
