"""What the memory engine's helpers (rank, reconcile, turns, jobs) use of it.

`LocalMemory` (memory/local.py) is the one implementation; the helpers depend on
this description rather than on the class, so the arrows run one way: local.py
imports its helpers, the helpers import this.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from cozy.core.types import MemoryHit
from cozy.engines.base import EngineContext
from cozy.engines.memory.rank import Weights
from cozy.engines.memory.repo import MemoryRepo, MemoryRow
from cozy.engines.memory.types import TurnInput
from cozy.engines.retrieval.vector_index import VectorIndex


class MemoryParts(Protocol):
    ctx: EngineContext
    repo: MemoryRepo
    scope: str  # "user" or "personality"
    half_life: float  # recency half-life in days (0: off)
    neighbour_spread: float
    model: str | None  # extraction model ("provider:model"); None: the default
    rank_weights: Weights
    rrf_k: float
    keyword_weight: float
    dedupe_threshold: float
    chunk_chars: int
    max_chunks: int
    extract_attempts: int
    extract_max_tokens: int | None
    index_assistant: bool
    backlog_limit: int  # queued jobs past which a saved turn queues none (0: no limit)
    turn_context: bool

    def embed_model(self) -> str | None: ...

    async def embed(self, texts: Sequence[str]) -> list[list[float]] | None: ...

    async def query_vector(
        self, query: str, wait: float | None = None
    ) -> tuple[list[float] | None, str | None]: ...

    async def version(self, user_id: str, *, fresh: bool = False) -> int: ...

    async def index(self, user_id: str, version: int | None = None) -> VectorIndex[str]: ...

    async def rows_of(
        self, user_id: str, version: int, ids: Sequence[str]
    ) -> dict[str, MemoryRow]: ...

    async def write(
        self,
        user_id: str,
        fn: Any,
        added: Sequence[tuple[str, Sequence[float] | None]] = (),
        stale: bool = False,
    ) -> Any: ...

    # only what reconcile passes (LocalMemory.search, memory/hybrid.py, takes more)
    async def search(
        self, query: str, *, user_id: str, limit: int = 5, kinds: Sequence[str] | None = None
    ) -> list[MemoryHit]: ...

    async def index_turns(
        self,
        turns: Sequence[TurnInput],
        *,
        user_id: str,
        session_id: str | None = None,
        personality_id: str | None = None,
    ) -> list[str]: ...
