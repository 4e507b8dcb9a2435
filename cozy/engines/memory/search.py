"""Ranking for memory search: an in-memory vector matrix per user, and rank fusion.

Hybrid search = BM25 (keyword) and cosine (vectors), fused with reciprocal rank
fusion (each list contributes w / (k + rank)); then optional recency weighting.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

_BLAS: Any = None


def blas_single_thread() -> Any:
    """A context in which BLAS runs on the calling thread only.

    A matrix x vector product is bound by memory bandwidth: helper threads do not
    make it faster, and on a busy machine waiting for them makes the slow queries
    several times slower (bench/bench_memory.py `floor` rows).
    """
    global _BLAS
    if _BLAS is None:
        from threadpoolctl import ThreadpoolController

        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")


class VectorIndex:
    """The active vectors of one user as one contiguous float32 matrix.

    Rows live in a buffer that grows by doubling, so adding a memory is O(dims);
    a removed row is zeroed and its id dropped. One search is one matrix-vector
    product and an `argpartition` for the top rows.
    """

    def __init__(
        self, version: int, ids: Sequence[str], matrix: np.ndarray, model: str | None = None
    ) -> None:
        self.version = version
        self.model = model
        self.refreshed_at = 0.0  # `updated_at` watermark for incremental refresh
        self._buf = np.ascontiguousarray(matrix, dtype=np.float32)
        if not self._buf.flags.writeable:  # rows read straight from bytes: add/remove write
            self._buf = self._buf.copy()
        self._n = len(ids)
        self.ids: list[str | None] = list(ids)
        self._pos = {mid: i for i, mid in enumerate(ids)}

    @classmethod
    def empty(cls, version: int = -1) -> VectorIndex:
        return cls(version, [], np.zeros((0, 0), dtype=np.float32))

    def __len__(self) -> int:
        return len(self._pos)

    @property
    def matrix(self) -> np.ndarray:
        return self._buf[: self._n]

    def search(
        self, query: Sequence[float] | np.ndarray, limit: int, allowed: set[str] | None = None
    ) -> list[tuple[str, float]]:
        if not self._pos or self._buf.size == 0 or limit <= 0:
            return []
        q = np.asarray(query, dtype=np.float32)
        if q.shape[0] != self._buf.shape[1]:
            return []  # embedded by another model: dimensions differ, skip vectors
        with blas_single_thread():
            scores = self.matrix @ q
        n = self._n
        take = min(n, (limit * 4 if allowed is not None else limit) + (n - len(self._pos)))
        top = np.argpartition(-scores, take - 1)[:take] if take < n else np.arange(n)
        top = top[np.argsort(-scores[top])]
        out: list[tuple[str, float]] = []
        for i in top:
            mid = self.ids[int(i)]
            if mid is None or (allowed is not None and mid not in allowed):
                continue
            out.append((mid, float(scores[int(i)])))
            if len(out) >= limit:
                break
        return out

    def add(self, mid: str, vec: Sequence[float] | np.ndarray) -> None:
        v = np.asarray(vec, dtype=np.float32)
        if mid in self._pos:
            if v.shape[0] == self._buf.shape[1]:
                self._buf[self._pos[mid]] = v
            return
        if self._buf.size == 0:
            self._buf = np.zeros((16, v.shape[0]), dtype=np.float32)
        elif v.shape[0] != self._buf.shape[1]:
            return
        if self._n == self._buf.shape[0]:
            grown = np.zeros((self._n * 2, self._buf.shape[1]), dtype=np.float32)
            grown[: self._n] = self._buf[: self._n]
            self._buf = grown
        self._buf[self._n] = v
        self._pos[mid] = self._n
        self.ids.append(mid)
        self._n += 1

    def remove(self, mid: str) -> None:
        i = self._pos.pop(mid, None)
        if i is not None:
            self._buf[i] = 0.0
            self.ids[i] = None


def rrf(
    lists: Sequence[Sequence[tuple[str, float]]],
    *,
    weights: Sequence[float] | None = None,
    k: float = 60.0,
) -> dict[str, float]:
    """Reciprocal rank fusion of ranked (id, score) lists."""
    fused: dict[str, float] = {}
    for n, ranked in enumerate(lists):
        w = weights[n] if weights is not None else 1.0
        for rank, (mid, _score) in enumerate(ranked):
            fused[mid] = fused.get(mid, 0.0) + w / (k + rank + 1)
    return fused


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


_WORD_RE = re.compile(r"\w+", re.UNICODE)
_STOP = """a an and are as at be but by did do does for from had has have he her him his how i if
in into is it its me my no not of on or our she so than that the their them then there these they
this to was we were what when where which who whom why will with would you your yours about after
again all also am any been before being can could just more most much only other over same should
some such too very up down out off"""
STOPWORDS = frozenset(_STOP.split())


def query_terms(text: str, *, max_terms: int = 32) -> list[str]:
    """The distinct informative words of `text` (stop words and single letters dropped)."""
    words = [w for w in _WORD_RE.findall(text.lower()) if len(w) > 1 or w.isdigit()]
    return list(dict.fromkeys(w for w in words if w not in STOPWORDS))[:max_terms]


def keyword_query(text: str, *, max_terms: int = 32) -> str:
    """An FTS5 OR-query of the distinct words of `text` (quoted: no syntax injection)."""
    return " OR ".join(f'"{w}"' for w in query_terms(text, max_terms=max_terms))
