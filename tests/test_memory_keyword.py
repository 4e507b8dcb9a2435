"""BM25 over FTS5 with the user filter: however few of the best matches belong to the
user, the answer is the user's best `limit` matches (retrieval/keyword.py tries the best
2 x limit matches first, then 4 x limit, then every match)."""

from __future__ import annotations

import random
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from cozy.engines.base import EngineContext
from cozy.engines.memory.local import LocalMemory
from cozy.engines.memory.repo import MemoryRepo
from cozy.storage.store import Store


@pytest.fixture
async def store(cozy_home: Path) -> AsyncIterator[Store]:
    s = await Store.open(f"sqlite:///{cozy_home / 'kw.db'}")
    yield s
    await s.close()


def every_match(conn: sa.Connection, user: str, limit: int) -> list[tuple[str, float]]:
    """The reference: every match ranked, then filtered (no cap)."""
    rows = conn.execute(
        sa.text(
            "SELECT m.id, -bm25(memories_fts, 1.0, 0.35) AS s FROM memories_fts f "
            "JOIN memories m ON m.rowid = f.rowid WHERE memories_fts MATCH '\"violin\"' "
            "AND m.user_id = :u AND m.status = 'active' ORDER BY s DESC LIMIT :k"
        ),
        {"u": user, "k": limit},
    )
    return [(r[0], float(r[1])) for r in rows]


@pytest.mark.parametrize("share", [1.0, 0.4, 0.1])
async def test_the_users_best_matches_whatever_their_share(store: Store, share: float) -> None:
    mem = LocalMemory({"embeddings": False}, EngineContext(store=store))
    rng = random.Random(4)
    filler = ["tea", "jazz", "garden", "chess", "book", "movie", "train", "piano"]
    for i in range(300):
        user = "u" if rng.random() < share else "o"
        words = " ".join(rng.choices(filler, k=rng.randint(1, 12)))
        await mem.repo.write(user, _insert(user, f"violin {i} {words}"))
    found = await mem.repo.keyword("u", "violin", 50)
    want = await store.read_with(lambda conn: every_match(conn, "u", 50))
    assert [s for _, s in found] == pytest.approx([s for _, s in want])
    last = want[-1][1]  # rows tied with the last one may be either
    assert {m for m, s in found if s > last} == {m for m, s in want if s > last}


def _insert(user: str, text: str) -> Callable[[AsyncConnection], Awaitable[str]]:
    async def fn(conn: AsyncConnection) -> str:
        return await MemoryRepo.insert(conn, user_id=user, kind="fact", text=text)

    return fn


class _Seen(threading.Event):
    """An Event that notes the thread that set it."""

    def __init__(self) -> None:
        super().__init__()
        self.by: int | None = None

    def set(self) -> None:
        self.by = threading.get_ident()
        super().set()


async def test_started_is_set_by_the_worker_at_its_statement(store: Store) -> None:
    """Hybrid search waits on `started` before its GIL-holding vector pass (memory/hybrid.py
    `both_lists`): the SQLite worker sets it; with no statement to run it is set at once."""
    mem = LocalMemory({"embeddings": False}, EngineContext(store=store))
    for i in range(5):
        await mem.repo.write("u", _insert("u", f"violin lesson {i}"))
    started = _Seen()
    found = await mem.repo.keyword("u", "violin", 10, started=started)
    assert len(found) == 5
    assert started.is_set() and started.by not in (None, threading.get_ident())
    nothing = _Seen()
    assert await mem.repo.keyword("u", "the", 10, started=nothing) == []  # stop word only
    assert nothing.is_set() and nothing.by == threading.get_ident()
