"""Keyword retrieval for memories on SQLite: FTS5 BM25 over the informative terms.

BM25 costs one score per matching row, so a query over a large store is planned:

1. the query's words, stop words dropped (`query_terms`);
2. each word's document frequency from FTS5 (`count(*)`, no ranking), cached for a
   while (a plan needs the order of magnitude, not the exact count);
3. words are kept from the rarest up while their matches stay within `budget`; a
   common word left out has a low IDF and would hardly move the ranking;
4. when even the rarest word matches more than `budget` rows, only its newest
   `budget` matches are ranked.

Ranking happens inside FTS5 (`ORDER BY bm25(...) LIMIT n`, a turn's `context` column at
`context_weight`); the best rows are then filtered by user, status and kind. If the
filters leave too few rows (other users' memories), the query runs again over every
match of the chosen terms.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, OperationalError

from cozy.engines.memory.search import query_terms
from cozy.storage import db
from cozy.storage.store import Store

T = TypeVar("T")


@dataclass(slots=True)
class Plan:
    terms: list[str]
    matches: int  # upper bound of the rows the terms match
    window: bool  # the rarest term alone is over budget: rank its newest matches


def plan(freqs: dict[str, int], budget: int) -> Plan:
    found = sorted((n, t) for t, n in freqs.items() if n > 0)
    kept: list[str] = []
    matches = 0
    for n, term in found:
        if kept and matches + n > budget:
            break
        kept.append(term)
        matches += n
    return Plan(kept, matches, matches > budget)


async def read_sync(store: Store, fn: Callable[[Connection], T]) -> T:
    """Run `fn` on a sync connection: on a SQLite file, in one worker-thread hop.

    Several statements then cost one hop, not one each (under load a hop waits for
    a core: it was most of a small search's time).
    """
    thread = store.sqlite_thread
    try:
        if thread is not None:
            return await thread.read(fn)
        async with store.engine.connect() as conn:
            return await conn.run_sync(fn)
    except (OperationalError, DBAPIError) as exc:
        raise db.translate(exc, store.url) from exc


class KeywordIndex:
    def __init__(
        self, store: Store, *, context_weight: float = 0.35, budget: int = 5000, ttl: float = 300
    ) -> None:
        self.store = store
        self.context_weight = context_weight
        self.budget = budget
        self.ttl = ttl
        self._df: dict[str, tuple[int, float]] = {}

    def _known(self, terms: Sequence[str]) -> dict[str, int]:
        """The cached document frequencies of `terms` (those not older than `ttl`)."""
        now = time.monotonic()
        hits = {t: self._df[t] for t in terms if t in self._df}
        return {t: n for t, (n, at) in hits.items() if now - at <= self.ttl}

    def _remember(self, counted: dict[str, int]) -> None:
        if len(self._df) > 50_000:
            self._df.clear()
        now = time.monotonic()
        self._df.update({t: (n, now) for t, n in counted.items()})

    @staticmethod
    def _count(conn: Connection, terms: Sequence[str]) -> dict[str, int]:
        """Document frequencies of `terms`, one statement for all of them."""
        if not terms:
            return {}
        cols = ", ".join(
            f"(SELECT count(*) FROM memories_fts WHERE memories_fts MATCH :t{i})"
            for i in range(len(terms))
        )
        params = {f"t{i}": f'"{t}"' for i, t in enumerate(terms)}
        row = conn.exec_driver_sql(f"SELECT {cols}", params).one()
        return {t: int(n) for t, n in zip(terms, row, strict=True)}

    async def _sync(self, fn: Callable[[Connection], T]) -> T:
        return await read_sync(self.store, fn)

    async def frequencies(self, terms: Sequence[str]) -> dict[str, int]:
        known = self._known(terms)
        todo = [t for t in terms if t not in known]
        if todo:  # one round trip for every unknown term
            counted = await self._sync(lambda conn: self._count(conn, todo))
            self._remember(counted)
            known.update(counted)
        return {t: known[t] for t in terms}

    async def search(
        self, user_id: str, query: str, limit: int, kinds: Sequence[str] | None = None
    ) -> list[tuple[str, float]]:
        """(memory id, BM25 score: higher is better), best first."""
        terms = query_terms(query)
        if not terms or limit <= 0:
            return []
        known = self._known(terms)
        todo = [t for t in terms if t not in known]
        counted: dict[str, int] = {}

        def run(conn: Connection) -> list[Any]:
            counted.update(self._count(conn, todo))
            return self._ranked(
                conn, plan({**known, **counted}, self.budget), user_id, limit, kinds
            )

        rows = await self._sync(run)
        self._remember(counted)  # on the event loop: the cache is not shared with threads
        return [(str(r[0]), -float(r[1])) for r in rows]

    def _ranked(
        self, conn: Connection, chosen: Plan, user_id: str, limit: int, kinds: Sequence[str] | None
    ) -> list[Any]:
        if not chosen.terms:
            return []
        match = " OR ".join(f'"{t}"' for t in chosen.terms)
        params: dict[str, Any] = {"q": match, "u": user_id, "k": limit}
        inner = ["memories_fts MATCH :q"]
        if chosen.window:
            floor = conn.exec_driver_sql(
                "SELECT rowid FROM memories_fts WHERE memories_fts MATCH :q "
                "ORDER BY rowid DESC LIMIT 1 OFFSET :b",
                {"q": match, "b": self.budget},
            ).first()
            if floor is not None:
                params["floor"] = int(floor[0])
                inner.append("rowid >= :floor")
        kind_sql = ""
        if kinds:
            kind_sql = " AND m.kind IN (" + ",".join(f":k{i}" for i in range(len(kinds))) + ")"
            params.update({f"k{i}": k for i, k in enumerate(kinds)})

        def sql(capped: bool) -> str:
            """SQLite's own SQL, run with `exec_driver_sql`: SQLAlchemy's compile and cache-key
            walk of a text() with bind parameters cost 0.1 ms a statement (measured at 10k)."""
            cap = " LIMIT :n" if capped else ""
            where = " AND ".join(inner if capped else inner[:1])
            # bm25() called directly: the same scores as `rank MATCH 'bm25(...)'` and
            # `ORDER BY rank`, a quarter to a third faster (measured on FTS5 at 100k rows)
            return (
                f"SELECT m.id, f.score FROM (SELECT rowid, bm25(memories_fts, 1.0, "
                f"{self.context_weight:g}) AS score FROM memories_fts "
                f"WHERE {where} ORDER BY score{cap}) AS f "
                "JOIN memories m ON m.rowid = f.rowid "
                f"WHERE m.user_id = :u AND m.status = 'active'{kind_sql} ORDER BY f.score LIMIT :k"
            )

        # the best 2 x limit matches first: enough when nearly every match is this user's
        # active memory (one user per store, the local default); each joined match costs
        # a row read (100k rows: 2.7-3.0 ms at 2 x 50 against 3.5-3.7 ms at 200). Then as
        # before: 200 (4 x limit), then every match. The answer is the same either way.
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
