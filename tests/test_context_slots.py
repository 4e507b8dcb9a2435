"""Context builds on a saturated server: past `concurrency` builds a turn waits for a
slot before its engines' clocks start, so searches that share one scarce resource (the
cores, in production) are not all cut by their timeouts; a turn that cannot get a slot
within `queue_timeout` goes on without context and says why."""

from __future__ import annotations

import asyncio

from helpers import SleepyMemory

from cozy.core.context import ContextService
from cozy.core.personalities import Personality
from cozy.core.types import MemoryHit, Message


class OneAtATime(SleepyMemory):
    """Each search holds a shared resource for `delay` s (as a busy core would)."""

    def __init__(self, delay: float) -> None:
        super().__init__(delay)
        self.resource = asyncio.Lock()

    async def search_memories(self, query: str, **kw: object) -> list[MemoryHit]:
        async with self.resource:
            return await super().search_memories(query, **kw)  # type: ignore[arg-type]


def _personality() -> Personality:
    return Personality.model_validate({"id": "t", "name": "T", "system_prompt": "be kind"})


async def _builds(svc: ContextService, n: int) -> list[dict[str, object]]:
    async def one(i: int) -> dict[str, object]:
        bundle = await svc.build(
            query=f"question {i}",
            user_id="u",
            personality=_personality(),
            history=[],
            user_message=Message("user", f"question {i}"),
            token_budget=4000,
        )
        return bundle.metadata

    return await asyncio.gather(*(one(i) for i in range(n)))


async def test_builds_past_the_slots_wait_instead_of_timing_out() -> None:
    # 16 searches of 0.1 s on one resource: the last one is done after 1.6 s
    gated = ContextService(memory=OneAtATime(0.1), timeouts={"memory": 1.0}, concurrency=2)
    metas = await _builds(gated, 16)
    assert not any(m["degraded"] for m in metas), [m["degrade_reasons"] for m in metas]
    assert max(float(m["queued_ms"]) for m in metas) > 500  # they did wait  # type: ignore[arg-type]
    # the same load without the gate: every search is on the clock while it queues
    open_ = ContextService(memory=OneAtATime(0.1), timeouts={"memory": 1.0}, concurrency=64)
    metas = await _builds(open_, 16)
    timed_out = [m for m in metas if m["degraded"]]
    assert timed_out and "timed out" in str(timed_out[0]["degrade_reasons"])


async def test_no_slot_within_the_queue_timeout_degrades_with_the_reason() -> None:
    svc = ContextService(
        memory=SleepyMemory(1.0), timeouts={"memory": 5.0}, concurrency=1, queue_timeout=0.2
    )
    first, second = await _builds(svc, 2)
    assert not first["degraded"]
    assert second["degraded"]
    assert "server busy (no context slot within 0.2s)" in str(second["degrade_reasons"])
