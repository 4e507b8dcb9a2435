"""How an engine says it answered with less than it should have (e.g. keywords only
because the embedder was slow), without changing what its search returns.

The caller opens `noting()` around the call; the engine calls `degraded(reason)`
anywhere below it, in the same task or one it starts. Nobody listening: a no-op.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_notes: ContextVar[list[str] | None] = ContextVar("cozy_degraded", default=None)


def degraded(reason: str) -> None:
    """Record why the current engine call is degraded (for whoever is `noting`)."""
    notes = _notes.get()
    if notes is not None and reason not in notes:
        notes.append(reason)


@contextmanager
def noting() -> Iterator[list[str]]:
    """Collect the degrade reasons of the engine calls made inside the block."""
    notes: list[str] = []
    token = _notes.set(notes)
    try:
        yield notes
    finally:
        _notes.reset(token)
