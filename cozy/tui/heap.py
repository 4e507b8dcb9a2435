"""Keep Python's garbage collector from pausing the UI while answers stream.

A full (generation 2) collection walks every tracked object: with Textual, the
runtime and their imports loaded, that is a pause of 100-900 ms on a busy machine,
long enough to freeze typing. Two measures, both for the app's own process
(`cozy chat`, so tuning its collector is the app's call):

- once the app has started, everything alive is collected once and then frozen
  (moved out of the collector's generations), so later full collections only walk
  what was allocated since (`settle_heap`);
- while an answer streams, full collections are put off until the turn ends
  (`quiet_gc`); the young generations are still collected, so short-lived cycles
  are freed as usual, and what a turn leaves behind is collected after it.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

_DEFER = 1_000_000  # young-generation passes before a full one: never, within a turn


def settle_heap() -> int:
    """Collect what start-up left behind, then freeze the survivors; returns how many
    objects are frozen now."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


@contextlib.contextmanager
def quiet_gc() -> Iterator[None]:
    """No full collection inside the block (young generations still collected)."""
    gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gen0, gen1, max(gen2, _DEFER))
    try:
        yield
    finally:
        now = gc.get_threshold()
        if now[2] == max(gen2, _DEFER):  # nobody changed it meanwhile
            gc.set_threshold(now[0], now[1], gen2)
