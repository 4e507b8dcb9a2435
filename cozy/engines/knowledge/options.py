"""The options of `knowledge.local` (engines.yaml `knowledge:`), validated at load.

`chunk_tokens` (200), `chunk_overlap` (30),
`max_file_mb` (64), `embed` (true: use the runtime's `embed` engine when one is
configured), `candidates` (50 per retriever), `embed_wait` (seconds the context
stage waits for a cold embedder before answering from BM25 alone, 0.2),
`vector_timeout` (0.3: seconds the context stage's hybrid search waits for the query
embedding; an embedder that fails or hangs gives keyword results with the reason
"keywords only"), `search_wait` (20: what a search nobody else waits on, `cozy knowledge
search`, gives a cold embedder to load and embed the query before it answers from
keywords alone, saying so),
`include_hidden` (false), `batch_mb` (2) and `batch_files` (200): documents
written per transaction, `keyword_budget` (10000: chunks BM25 ranks at most per
query, see retrieval.py), `min_similarity` (0.2: vector candidates below this cosine
are dropped, so an unrelated question does not pull in unrelated passages).
"""

from __future__ import annotations

from cozy.core.errors import ConfigError
from cozy.engines.base import EngineOptions
from cozy.engines.knowledge.ingest import Settings

MODES = ("hybrid", "bm25", "vector")


class LocalKnowledgeOptions(EngineOptions):
    """The options listed in this module's docstring."""

    chunk_tokens: int = 200
    chunk_overlap: int = 30
    max_file_mb: float = 64
    include_hidden: bool = False
    batch_mb: float = 2
    batch_files: int = 200
    candidates: int = 50
    embed_wait: float = 0.2
    vector_timeout: float = 0.3
    search_wait: float = 20.0
    min_similarity: float = 0.2
    keyword_budget: int = 10_000
    embed: bool = True

    def ingest_settings(self) -> Settings:
        """What ingestion uses of these options (a chunk size out of range refused)."""
        if not 16 <= self.chunk_tokens <= 2000:
            raise ConfigError(
                f"knowledge.chunk_tokens must be between 16 and 2000, got {self.chunk_tokens}",
                hint="fix `knowledge.chunk_tokens` in engines.yaml",
            )
        return Settings(
            chunk_tokens=self.chunk_tokens,
            chunk_overlap=self.chunk_overlap,
            max_file_bytes=int(self.max_file_mb * 1024 * 1024),
            include_hidden=self.include_hidden,
            batch_bytes=int(self.batch_mb * 1024 * 1024),
            batch_files=max(1, self.batch_files),
        )
