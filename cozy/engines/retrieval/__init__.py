"""The retrieval kernel shared by memory and knowledge.

- `terms`: a query's informative words (stop words per kind of text);
- `keyword`: one keyword index over SQLite FTS5 (BM25) or Postgres (ts_rank x IDF),
  planned by document frequency; `pg_fts` holds its Postgres statements;
- `vectors`: top-k over a float32 matrix (int8 pass + exact rerank when big);
  `vector_index`: the matrix of one user's rows by id;
- `fusion`: reciprocal rank fusion;
- `embedder`: the lazily loaded embed engine and its model-keyed query-vector cache.

The scope version (a counter per user bumped by every write, cozy/storage/scope_versions.py)
says when cached frequencies and matrices are stale.
"""
