"""The idle heap trim of `cozy serve` (server/memtrim.py): once per idle spell, never
while requests come, and glibc's malloc_trim really gives freed heap back."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cozy.server.memtrim import IdleTrim, malloc_trim


async def test_trims_once_per_idle_spell_and_never_while_busy() -> None:
    calls: list[int] = []
    idle = IdleTrim(every=30, trim=lambda: calls.append(1) or 1)
    assert not await idle.tick()  # no request yet: nothing was freed
    idle.touch()
    assert not await idle.tick()  # a request since the last tick: busy
    assert await idle.tick()  # a whole tick without one: trimmed
    assert not await idle.tick() and not await idle.tick()  # still idle: once is enough
    idle.touch()
    idle.touch()
    assert not await idle.tick()
    assert await idle.tick()
    assert calls == [1, 1] and idle.trims == 2
    assert not await IdleTrim(trim=None).tick()  # no glibc: nothing to call


def _private_mib() -> float:
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        if line.startswith("Private_Dirty:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no Private_Dirty in smaps_rollup")


@pytest.mark.skipif(malloc_trim() is None, reason="needs glibc (Linux)")
def test_malloc_trim_gives_freed_heap_back() -> None:
    trim = malloc_trim()
    assert trim is not None
    trim()
    # 80 MiB of 1 KiB malloc'd blocks; one in 64 kept, so free() alone cannot shrink
    # the heap (what stays is spread over it), which is what a served burst leaves
    blocks = [bytes(1024) for _ in range(80 * 1024)]
    keep = blocks[::64]
    del blocks
    before = _private_mib()
    trim()
    after = _private_mib()
    assert before - after > 30, (before, after)
    assert len(keep) == 1280 and sys.platform.startswith("linux")
