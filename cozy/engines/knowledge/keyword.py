"""Keyword retrieval: BM25 over SQLite FTS5, bounded to the informative query terms.

Ranking every chunk that contains a common word is what makes BM25 slow on a big
index (FTS5 computes `bm25()` for each matching row). So a query is planned first:

1. its words, stop words dropped (`query_terms`);
2. each term's document frequency, from FTS5 itself (`count(*) ... MATCH`, cheap:
   no ranking), cached until the index changes;
3. if all the terms together match at most `budget` chunks, they are all used, so
   small and medium indexes get exact BM25; otherwise terms are kept from the rarest
   up while their matches stay within the budget. A dropped common term has a low
   IDF, so it would hardly move the ranking of the chunks that the rare terms find;
4. when even the rarest term matches more than `budget` chunks (every word of the
   query is common), only its newest `budget` matches are ranked.

The FTS5 query is `ORDER BY rank LIMIT n` (BM25 sorted inside FTS5), then joined to
the chunk table for the user / collection / path filters; if the filters leave too
few rows, the query runs again without the inner limit.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from cozy.core.errors import EngineError
from cozy.engines.knowledge.index import KnowledgeIndex, like_prefix

STOPWORDS = frozenset(
    """a an and are as at be by can do does for from how i in is it its me my of on or our
    so that the their there these this to was we what when where which who why will with
    you your""".split()  # noqa: SIM905 - a word list reads best as text
)
MAX_TERMS = 32
WEIGHTS = "bm25(2.0, 1.0)"  # a heading match counts twice


def query_terms(text: str) -> list[str]:
    """The query's distinct words, stop words dropped (unless nothing else is left)."""
    words = [w for w in re.findall(r"\w+", text.lower()) if len(w) > 1 or w.isdigit()]
    kept = [w for w in words if w not in STOPWORDS] or words
    return list(dict.fromkeys(kept))[:MAX_TERMS]


def match_expr(terms: Sequence[str]) -> str | None:
    """An FTS5 MATCH expression: the terms as quoted strings, OR-ed."""
    return " OR ".join(f'"{t}"' for t in terms) if terms else None


def fts_query(text: str) -> str | None:
    return match_expr(query_terms(text))


@dataclass(slots=True)
class Plan:
    terms: list[str]
    matches: int  # upper bound of the chunks the terms match (sum of their frequencies)
    window: bool  # True: the rarest term alone is over budget; rank its newest matches


def plan(freqs: dict[str, int], budget: int) -> Plan:
    """Which terms to rank with, given each term's document frequency."""
    found = sorted((n, t) for t, n in freqs.items() if n > 0)
    total = sum(n for n, _ in found)
    if total <= budget:
        return Plan([t for _, t in found], total, False)
    kept: list[str] = []
    matches = 0
    for n, term in found:
        if kept and matches + n > budget:
            break
        kept.append(term)
        matches += n
    return Plan(kept, matches, matches > budget)


@dataclass(slots=True)
class TermStats:
    """Document frequencies per term, valid for one index generation."""

    generation: int = -1
    freqs: dict[str, int] = field(default_factory=dict)

    async def lookup(
        self, index: KnowledgeIndex, generation: int, terms: Sequence[str]
    ) -> dict[str, int]:
        if generation != self.generation or len(self.freqs) > 50_000:
            self.generation, self.freqs = generation, {}
        todo = [t for t in terms if t not in self.freqs]
        if todo:  # one round trip for all unknown terms
            cols = ", ".join(
                f"(SELECT count(*) FROM knowledge_fts WHERE knowledge_fts MATCH :t{i})"
                for i in range(len(todo))
            )
            params = {f"t{i}": f'"{t}"' for i, t in enumerate(todo)}
            row = (await index.read(sa.text(f"SELECT {cols}"), params))[0]
            self.freqs.update({t: int(n) for t, n in zip(todo, row, strict=True)})
        return {t: self.freqs[t] for t in terms}


async def bm25_search(
    index: KnowledgeIndex,
    user_id: str,
    query: str,
    *,
    collections: Sequence[str] | None,
    prefix: str | None,
    k: int,
    budget: int = 10_000,
    stats: TermStats | None = None,
    generation: int = 0,
) -> list[tuple[int, float]]:
    """(chunk id, score) best first; the score is BM25 (higher is better)."""
    if index.dialect == "postgresql":  # Postgres full-text search (issue #12)
        from cozy.engines.knowledge.pg_keyword import pg_keyword_search

        return await pg_keyword_search(
            index, user_id, query, collections=collections, prefix=prefix, k=k,
            budget=budget, generation=generation,
        )  # fmt: skip
    if index.dialect != "sqlite":
        raise EngineError(
            f"keyword search for knowledge does not support {index.dialect}",
            hint="use SQLite (the default) or Postgres (COZY_DATABASE_URL=postgresql://...)",
        )
    terms = query_terms(query)
    if not terms:
        return []
    stats = stats if stats is not None else TermStats()
    chosen = plan(await stats.lookup(index, generation, terms), budget)
    match = match_expr(chosen.terms)
    if match is None:
        return []
    params: dict[str, Any] = {"q": match, "u": user_id, "k": k}
    inner = ["knowledge_fts MATCH :q", f"rank MATCH '{WEIGHTS}'"]
    if chosen.window:
        floor = await index.read(
            sa.text(
                "SELECT rowid FROM knowledge_fts WHERE knowledge_fts MATCH :q "
                "ORDER BY rowid DESC LIMIT 1 OFFSET :b"
            ),
            {"q": match, "b": budget},
        )
        if floor:
            params["floor"] = int(floor[0][0])
            inner.append("rowid >= :floor")
    where = ["c.user_id = :u"]
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

    def sql(limited: bool) -> str:
        cap = " LIMIT :n" if limited else ""
        return (
            f"SELECT c.id, f.rank FROM (SELECT rowid, rank FROM knowledge_fts "
            f"WHERE {' AND '.join(inner)} ORDER BY rank{cap}) AS f "
            f"JOIN knowledge_chunks c ON c.id = f.rowid {join} "
            f"WHERE {' AND '.join(where)} ORDER BY f.rank LIMIT :k"
        )

    params["n"] = max(4 * k, 200)
    rows = await index.read(sa.text(sql(True)), params)
    if len(rows) < k and chosen.matches > params["n"]:  # the filters dropped too many
        rows = await index.read(sa.text(sql(False)), params)
    return [(int(r[0]), -float(r[1])) for r in rows]
