"""Memory search's own pieces: rows cached per user version, recency, neighbouring turns.

Hybrid search = BM25 (keyword) and cosine (vectors) from the shared retrieval kernel
(cozy/engines/retrieval/), fused with reciprocal rank fusion (each list contributes
w / (k + rank)); then these.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class RowCache(Generic[T]):
    """Rows already read for one user, valid while the user's version is unchanged.

    Search reads the same candidate rows again and again (common words, the same
    session's turns); every write bumps the version and so empties the cache. Kept
    here rather than as a generic LRU: the version, not age, says when it is stale.
    """

    def __init__(self, max_rows: int = 20_000, max_users: int = 64) -> None:
        self.max_rows = max_rows  # per user
        self.max_users = max_users  # the least recently searched user is dropped first
        self._by_user: dict[str, tuple[int, dict[str, T]]] = {}

    def get(self, user_id: str, version: int) -> dict[str, T]:
        held = self._by_user.pop(user_id, None)  # re-inserted last: dict order = recency
        if held is None or held[0] != version or len(held[1]) > self.max_rows:
            held = (version, {})
        self._by_user[user_id] = held
        while len(self._by_user) > self.max_users:
            del self._by_user[next(iter(self._by_user))]
        return held[1]


def recency_factor(ts: float | None, half_life_days: float, now: float | None = None) -> float:
    """1.0 for now, 0.5 after one half-life; never below 0.25 (old facts still count)."""
    if ts is None or half_life_days <= 0:
        return 1.0
    age_days = max(0.0, ((now or time.time()) - ts) / 86400)
    return max(0.25, math.pow(0.5, age_days / half_life_days))


def neighbours(
    turn_ids: Sequence[str],
    fused: dict[str, float],
    links: Mapping[str, Sequence[str]],
    spread: float,
) -> None:
    """Let a turn lend part of its score to the turns just before and after it.

    Conversation answers often sit next to the turn that matches the question
    ("What did you buy?" / "A guitar"). `links` maps a turn id to its neighbours.
    """
    if spread <= 0:
        return
    bonus: dict[str, float] = {}
    for mid in turn_ids:
        for other in links.get(mid, ()):
            bonus[other] = bonus.get(other, 0.0) + spread * fused.get(mid, 0.0)
    for mid, b in bonus.items():
        fused[mid] = fused.get(mid, 0.0) + b
