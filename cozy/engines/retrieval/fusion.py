"""Reciprocal rank fusion: each ranked list gives an item w / (k + rank).

Needs no calibration between the lists' scores (BM25 and cosine are not comparable).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any, TypeVar

K = TypeVar("K", bound=Hashable)


def rrf(
    lists: Sequence[Sequence[tuple[K, Any]]],
    *,
    weights: Sequence[float] | None = None,
    k: float = 60.0,
) -> dict[K, float]:
    """Fused scores of ranked (id, score) lists (only the order of each list counts)."""
    fused: dict[K, float] = {}
    for n, ranked in enumerate(lists):
        w = weights[n] if weights is not None else 1.0
        for rank, (item, _score) in enumerate(ranked):
            fused[item] = fused.get(item, 0.0) + w / (k + rank + 1)
    return fused


def best_first(fused: dict[K, float]) -> list[tuple[K, float]]:
    """(id, score) by score, ties by id: the same order on every run."""
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))
