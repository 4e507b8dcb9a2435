"""Ranking for memory search: an in-memory vector matrix per user, and rank fusion.

Hybrid search = BM25 (keyword) and cosine (vectors), fused with reciprocal rank
fusion (each list contributes w / (k + rank)); then optional recency weighting.
"""

from __future__ import annotations

import contextlib
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    import numpy as np

    from cozy.engines.vectors import Int8Rows

# numpy and cozy.engines.vectors are imported where vectors are touched: a one-shot
# `cozy run` with no memories yet never needs them (~15% of its start-up).

SHORTLISTS = 16  # recent searches whose shortlist a VectorIndex keeps


class VectorIndex:
    """The active vectors of one user as one contiguous float32 matrix.

    Rows live in a buffer that grows by doubling, so adding a memory is O(dims);
    a removed row is zeroed, masked out and its id dropped. Search is
    `cozy.engines.vectors.top_k`: exact below APPROX_FROM rows, an int8 pass plus an
    exact float32 rerank above (the int8 copy is made on the first big search; each
    later search first encodes the rows added or changed since, so add/remove stay
    O(dims) on the caller's thread and only searches write the int8 copy).
    """

    def __init__(
        self, version: int, ids: Sequence[str], matrix: np.ndarray, model: str | None = None
    ) -> None:
        import numpy as np

        self.version = version
        self.model = model
        self.refreshed_at = 0.0  # `updated_at` watermark for incremental refresh
        self._buf = np.ascontiguousarray(matrix, dtype=np.float32)
        if not self._buf.flags.writeable:  # rows read straight from bytes: add/remove write
            self._buf = self._buf.copy()
        self._n = len(ids)
        self.ids: list[str | None] = list(ids)
        self._pos = {mid: i for i, mid in enumerate(ids)}
        self._live = np.ones(len(self._buf), dtype=bool)
        self._coarse: Int8Rows | None = None
        self._dirty: set[int] = set()  # rows changed in place since they were encoded
        self._lock = threading.Lock()  # the int8 copy is only written by searches, one at a time
        # query bytes -> the int8 pass's shortlist of row numbers (`search(near=...)`)
        self._shortlists: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._shortlists_lock = threading.Lock()

    @classmethod
    def empty(cls, version: int = -1) -> VectorIndex:
        import numpy as np

        return cls(version, [], np.zeros((0, 0), dtype=np.float32))

    def __len__(self) -> int:
        return len(self._pos)

    @property
    def matrix(self) -> np.ndarray:
        return self._buf[: self._n]

    @property
    def nbytes(self) -> int:
        """Bytes held by the vectors (float32 rows plus the int8 copy, when made)."""
        coarse = self._coarse.nbytes if self._coarse is not None else 0
        return int(self._buf.nbytes) + coarse

    def _coarse_rows(self, n: int) -> Int8Rows | None:
        """The int8 copy of rows [0, n), encoding rows added since it was made."""
        from cozy.engines import vectors
        from cozy.engines.vectors import Int8Rows

        if n < vectors.APPROX_FROM:
            return None
        with self._lock:
            if self._coarse is None:
                self._dirty.clear()
                self._coarse = Int8Rows.of(self._buf[:n])
            elif self._coarse.count < n:
                self._coarse.set(self._coarse.count, self._buf[self._coarse.count : n])
            while self._dirty:
                i = self._dirty.pop()
                if i < self._coarse.count:
                    self._coarse.set(i, self._buf[i : i + 1])
            return self._coarse

    def search(
        self,
        query: Sequence[float] | np.ndarray,
        limit: int,
        allowed: set[str] | None = None,
        *,
        near: Sequence[float] | np.ndarray | None = None,
        also: Sequence[str] = (),
    ) -> list[tuple[str, float]]:
        """The `limit` most similar memories: (id, cosine), best first.

        `near`: a query searched just before, of which `query` is a small move (the
        feedback vector of memory/rank.py: `near` moved towards the memories `also`).
        From SHORTLIST_FROM rows, that search's int8 pass left a shortlist of its best
        `vectors.SHORTLIST` rows; `query` is then scored exactly over those rows and
        `also` only, not by a second pass over every row.
        """
        import numpy as np

        from cozy.engines import vectors
        from cozy.engines.vectors import blas_single_thread, top_k

        if not self._pos or self._buf.size == 0 or limit <= 0:
            return []
        q = np.asarray(query, dtype=np.float32)
        if q.shape[0] != self._buf.shape[1]:
            return []  # embedded by another model: dimensions differ, skip vectors
        n = self._n
        buf, live = self._buf, self._live  # one snapshot: adds may grow them meanwhile
        keep = live[:n] if len(self._pos) < n else None
        take = limit * 4 if allowed is not None else limit
        big = n >= vectors.SHORTLIST_FROM  # the first search leaves a shortlist
        listed = self._shortlist(near) if near is not None and big else None
        # BLAS (only without numkong) runs on this thread alone
        with blas_single_thread() if vectors.uses_blas() else contextlib.nullcontext():
            if listed is not None:
                rows_of_also = [self._pos.get(m) for m in also]
                extra = [i for i in rows_of_also if i is not None and i < n]
                extra = [i for i in dict.fromkeys(extra) if not (listed == i).any()]
                among = np.concatenate([listed, np.asarray(extra, dtype=listed.dtype)])
                among = among[live[among]]  # rows removed since are masked out
                coarse = self._coarse_rows(n)  # rows changed since: encoded again first
                rows, scores = vectors.top_k_among(buf, q, take, among, coarse)
            else:
                found: list[np.ndarray] | None = [] if big else None
                coarse = self._coarse_rows(n)
                rows, scores = top_k(buf[:n], q, take, keep=keep, coarse=coarse, shortlist=found)
                if found:
                    self._keep_shortlist(q, found[0])
        out: list[tuple[str, float]] = []
        for i, score in zip(rows.tolist(), scores.tolist(), strict=True):
            mid = self.ids[i]
            if mid is None or (allowed is not None and mid not in allowed):
                continue
            out.append((mid, float(score)))
            if len(out) >= limit:
                break
        return out

    def shortlisted(self, query: Sequence[float] | np.ndarray) -> bool:
        """A search for `query` left a shortlist: `search(near=query)` is cheap."""
        from cozy.engines import vectors

        return self._n >= vectors.SHORTLIST_FROM and self._shortlist(query) is not None

    def _shortlist(self, query: Sequence[float] | np.ndarray) -> np.ndarray | None:
        import numpy as np

        key = np.asarray(query, dtype=np.float32).tobytes()
        with self._shortlists_lock:
            return self._shortlists.get(key)

    def _keep_shortlist(self, query: np.ndarray, rows: np.ndarray) -> None:
        with self._shortlists_lock:
            self._shortlists[query.tobytes()] = rows
            while len(self._shortlists) > SHORTLISTS:
                self._shortlists.popitem(last=False)

    def add(self, mid: str, vec: Sequence[float] | np.ndarray) -> None:
        import numpy as np

        v = np.asarray(vec, dtype=np.float32)
        if mid in self._pos:
            if v.shape[0] == self._buf.shape[1]:
                self._buf[self._pos[mid]] = v
                self._dirty.add(self._pos[mid])  # re-encoded by the next big search
            return
        if self._buf.size == 0:
            self._buf = np.zeros((16, v.shape[0]), dtype=np.float32)
            self._live = np.ones(16, dtype=bool)
        elif v.shape[0] != self._buf.shape[1]:
            return
        if self._n == self._buf.shape[0]:
            grown = np.zeros((self._n * 2, self._buf.shape[1]), dtype=np.float32)
            grown[: self._n] = self._buf[: self._n]
            live = np.ones(self._n * 2, dtype=bool)
            live[: self._n] = self._live[: self._n]
            self._buf, self._live = grown, live
        self._buf[self._n] = v
        self._live[self._n] = True
        self._pos[mid] = self._n
        self.ids.append(mid)
        self._n += 1  # the int8 copy encodes the new row on the next big search

    def vector(self, mid: str) -> np.ndarray | None:
        """The stored vector of `mid` (a copy), None when it is not in the index."""
        i = self._pos.get(mid)
        return None if i is None else self._buf[i].copy()

    def remove(self, mid: str) -> None:
        i = self._pos.pop(mid, None)
        if i is not None:
            self._buf[i] = 0.0
            self._live[i] = False
            self.ids[i] = None  # masked out of searches; the int8 row needs no update


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
