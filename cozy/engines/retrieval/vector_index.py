"""One user's vectors as one contiguous float32 matrix: the vector index of memory and
knowledge (top-k itself is retrieval/vectors.py).

Rows live in a buffer that grows by doubling, so adding a row is O(dims); a removed
row is zeroed, masked out and its id dropped. Knowledge builds its matrix once per
scope version with rows sorted by collection, so a collection is a contiguous range
(`search(ranges=...)`); memory keeps its matrix up to date row by row.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    import numpy as np

    from cozy.engines.retrieval.vectors import Int8Rows

# numpy and retrieval/vectors.py are imported where vectors are touched: a one-shot
# `cozy run` with no memories yet never needs them (~15% of its start-up).

K = TypeVar("K", bound=Hashable)

SHORTLISTS = 16  # recent searches whose shortlist a VectorIndex keeps


class VectorIndex(Generic[K]):
    """Rows of vectors by id (a memory's str, a chunk's int). Search is
    `retrieval.vectors.top_k`: exact below APPROX_FROM rows, an int8 pass plus an
    exact float32 rerank above (the int8 copy is made on the first big search; each
    later search first encodes the rows added or changed since, so add/remove stay
    O(dims) on the caller's thread and only searches write the int8 copy).
    """

    def __init__(
        self, version: int, ids: Sequence[K], matrix: np.ndarray, model: str | None = None
    ) -> None:
        import numpy as np

        self.version = version
        self.model = model
        self.refreshed_at = 0.0  # `updated_at` watermark for incremental refresh
        self._buf = np.ascontiguousarray(matrix, dtype=np.float32)
        if not self._buf.flags.writeable:  # rows read straight from bytes: add/remove write
            self._buf = self._buf.copy()
        self._n = len(ids)
        self.ids: list[K | None] = list(ids)
        self._pos = {mid: i for i, mid in enumerate(ids)}
        self._live = np.ones(len(self._buf), dtype=bool)
        self._coarse: Int8Rows | None = None
        self._dirty: set[int] = set()  # rows changed in place since they were encoded
        self._lock = threading.Lock()  # the int8 copy is only written by searches, one at a time
        # query bytes -> the int8 pass's shortlist of row numbers (`search(near=...)`)
        self._shortlists: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._shortlists_lock = threading.Lock()

    @classmethod
    def empty(cls, version: int = -1) -> VectorIndex[K]:
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
        from cozy.engines.retrieval import vectors
        from cozy.engines.retrieval.vectors import Int8Rows

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

    def encode(self) -> None:
        """Make the int8 copy now (when the index is big enough to use one), e.g. in the
        worker thread that loaded the matrix, not on the first search."""
        self._coarse_rows(self._n)

    def search(
        self,
        query: Sequence[float] | np.ndarray,
        limit: int,
        allowed: set[K] | None = None,
        *,
        near: Sequence[float] | np.ndarray | None = None,
        also: Sequence[K] = (),
        ranges: Sequence[tuple[int, int]] | None = None,
        keep: np.ndarray | None = None,
    ) -> list[tuple[K, float]]:
        """The `limit` most similar rows: (id, cosine), best first.

        `allowed`: only these ids (the search looks 4 x deeper to find them).
        `ranges`, `keep`: only rows in these [start, end) ranges, and of those only where
        the mask `keep` (over the ranges' rows, in order) is True (knowledge's scopes).

        `near`: a query searched just before, of which `query` is a small move (the
        feedback vector of memory/rank.py: `near` moved towards the memories `also`).
        From SHORTLIST_FROM rows, that search's int8 pass left a shortlist of its best
        `vectors.SHORTLIST` rows; `query` is then scored exactly over those rows and
        `also` only, not by a second pass over every row.
        """
        import numpy as np

        from cozy.engines.retrieval import vectors
        from cozy.engines.retrieval.vectors import blas_single_thread, top_k

        if not self._pos or self._buf.size == 0 or limit <= 0:
            return []
        q = np.asarray(query, dtype=np.float32)
        if q.shape[0] != self._buf.shape[1]:
            return []  # embedded by another model: dimensions differ, skip vectors
        n = self._n
        buf, live = self._buf, self._live  # one snapshot: adds may grow them meanwhile
        if ranges is not None:
            parts = [(a, min(b, n)) for a, b in ranges if min(b, n) > a]
            if len(self._pos) < n:  # removed rows in the scope are masked out
                alive = np.concatenate([live[a:b] for a, b in parts]) if parts else live[:0]
                keep = alive if keep is None else keep & alive
        else:
            parts = None
            keep = live[:n] if len(self._pos) < n else None
        take = limit * 4 if allowed is not None else limit
        big = n >= vectors.SHORTLIST_FROM and ranges is None  # the first search: a shortlist
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
                rows, scores = top_k(
                    buf[:n], q, take, ranges=parts, keep=keep, coarse=coarse, shortlist=found
                )
                if found:
                    self._keep_shortlist(q, found[0])
        out: list[tuple[K, float]] = []
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
        from cozy.engines.retrieval import vectors

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

    def add(self, mid: K, vec: Sequence[float] | np.ndarray) -> None:
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

    def vector(self, mid: K) -> np.ndarray | None:
        """The stored vector of `mid` (a copy), None when it is not in the index."""
        i = self._pos.get(mid)
        return None if i is None else self._buf[i].copy()

    def remove(self, mid: K) -> None:
        i = self._pos.pop(mid, None)
        if i is not None:
            self._buf[i] = 0.0
            self._live[i] = False
            self.ids[i] = None  # masked out of searches; the int8 row needs no update
