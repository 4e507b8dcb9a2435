"""What the knowledge engine's helpers (search, tool, jobs) use of it.

`LocalKnowledge` (knowledge/provider.py) is the one implementation; the helpers
depend on this description rather than on the class, so the arrows run one way:
provider.py imports its helpers, the helpers import this.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from cozy.core.errors import UsageError
from cozy.core.types import KnowledgeHit
from cozy.engines.base import EngineContext
from cozy.engines.knowledge.index import KnowledgeIndex
from cozy.engines.knowledge.ingest import IngestReport
from cozy.engines.knowledge.retrieval import VectorCache
from cozy.engines.retrieval.embedder import LazyEmbedder

_COLLECTION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def check_collection(name: str) -> None:
    if not _COLLECTION.fullmatch(name):
        raise UsageError(
            f"invalid collection name '{name}'",
            hint="use letters, digits, '-', '_' or '.', e.g. --collection work",
        )


class KnowledgeParts(Protocol):
    ctx: EngineContext
    candidates: int
    embed_wait: float
    vector_timeout: float
    min_similarity: float
    vectors: VectorCache
    embeddings: LazyEmbedder

    @property
    def index(self) -> KnowledgeIndex: ...

    async def keyword_search(
        self,
        query: str,
        user_id: str,
        collections: Sequence[str] | None,
        prefix: str | None,
        k: int,
        version: int,
    ) -> list[tuple[int, float]]: ...

    # only what the helpers pass (the provider's methods take more)
    async def search(
        self,
        query: str,
        *,
        user_id: str,
        collections: Sequence[str] | None = None,
        limit: int = 5,
        wait: float | None = None,
    ) -> list[KnowledgeHit]: ...

    async def add_paths(
        self, paths: Sequence[Path | str], *, user_id: str, collection: str, embed: bool, wait: bool
    ) -> IngestReport: ...

    async def embed_pending(self, user_id: str, collection: str, *, budget: float) -> int: ...
