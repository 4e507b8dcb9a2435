"""Keyword retrieval for knowledge: the chunks' table and scope for the shared keyword
index (cozy/engines/retrieval/keyword.py: planned BM25 on FTS5, ts_rank x IDF on Postgres).

A heading match counts twice a text match: FTS5's `bm25(2.0, 1.0)` over (heading, text);
on Postgres the stored `tsv` holds the heading at weight A and the text at weight B
(migration step `0007_pg_tsvector_columns`), B counting half of A. Document frequencies
are cached for one index version of the user (an ingest moves it).
"""

from __future__ import annotations

from collections.abc import Sequence

from cozy.engines.knowledge.index import like_prefix
from cozy.engines.retrieval.keyword import Filter, KeywordIndex, KeywordTable
from cozy.storage.store_base import StoreBase

CHUNKS = KeywordTable("knowledge_chunks", "c", fts="knowledge_fts", fts_key="id")


def keyword_index(store: StoreBase, budget: int = 10_000) -> KeywordIndex:
    return KeywordIndex(
        store,
        CHUNKS,
        fts_weights=(2.0, 1.0),
        pg_weights=(0.0, 0.0, 0.5, 1.0),
        budget=budget,
        ttl=float("inf"),  # valid for one version: `search(version=...)` drops the rest
    )


def chunk_scope(user_id: str, collections: Sequence[str] | None, prefix: str | None) -> Filter:
    """The user's chunks, in these collections, of documents under this path prefix."""
    scope = Filter(["c.user_id = :u"], {"u": user_id})
    if collections:
        names = []
        for i, name in enumerate(collections):
            scope.params[f"c{i}"] = name
            names.append(f":c{i}")
        scope.where.append(f"c.collection IN ({', '.join(names)})")
    if prefix:
        scope.join = " JOIN knowledge_documents d ON d.id = c.document_id"
        scope.params["p"] = like_prefix(prefix)
        scope.where.append("d.path LIKE :p ESCAPE '\\'")
    return scope
