"""Keep Python's garbage collector from pausing the UI while the user types.

A full (generation 2) collection walks every tracked object: with Textual, the
runtime and their imports loaded, that is a pause of 100-900 ms on a busy machine,
long enough to freeze typing. Three measures, all for the app's own process
(`cozy chat`, so tuning its collector is the app's call):

- once the app has started, everything alive is collected once and then frozen
  (moved out of the collector's generations), so later full collections only walk
  what was allocated since (`settle_heap`);
- while an answer streams, full collections are put off (`quiet_gc`, which holds
  them off: `hold_full_gc`); the young generations are still collected, so
  short-lived cycles are freed as usual;
- what a turn left behind is not collected when the turn ends (the user is often
  typing the next message then) but once the user has been idle for a while
  (`IdleCollector`): unfreeze, one full collection, freeze again, threshold back.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Iterator

_DEFER = 1_000_000  # young-generation passes before a full one: never, within a turn
_held: int | None = None  # the generation-2 threshold to put back, while held


def settle_heap() -> int:
    """Collect what start-up left behind, then freeze the survivors; returns how many
    objects are frozen now."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def hold_full_gc() -> None:
    """No automatic full collection until `release_full_gc` (young ones still run)."""
    global _held
    gen0, gen1, gen2 = gc.get_threshold()
    if _held is None:
        _held = gen2
    gc.set_threshold(gen0, gen1, max(gen2, _DEFER))


def full_gc_held() -> bool:
    return _held is not None


def release_full_gc(collect: bool = True) -> int:
    """Collect everything once (frozen objects included, so nothing that became
    garbage stays), freeze the survivors again and put the threshold back; returns
    how many objects were collected. Call it when a pause does not matter.
    `collect=False` (the app is closing) gives everything back to the collector and
    puts the threshold back, without collecting now."""
    global _held
    found = 0
    gc.unfreeze()
    if collect:
        found = gc.collect()
        gc.freeze()
    if _held is not None:
        gen0, gen1, now = gc.get_threshold()
        if now == max(_held, _DEFER):  # nobody changed it meanwhile
            gc.set_threshold(gen0, gen1, _held)
        _held = None
    return found


@contextlib.contextmanager
def quiet_gc() -> Iterator[None]:
    """No full collection inside the block; they stay held after it, until an
    `IdleCollector` releases them."""
    hold_full_gc()
    yield


class IdleCollector:
    """Runs the held full collection once no key came for `idle_s` seconds and no
    answer is running (`poll` is called from a timer; `touch` on every key)."""

    def __init__(self, idle_s: float = 2.0) -> None:
        self.idle_s = idle_s
        self.last_input = time.monotonic()
        self.runs = 0

    def touch(self) -> None:
        self.last_input = time.monotonic()

    def poll(self, busy: bool) -> bool:
        """Collect now if it is due; True when it did."""
        if busy or not full_gc_held() or time.monotonic() - self.last_input < self.idle_s:
            return False
        release_full_gc()
        self.runs += 1
        return True
