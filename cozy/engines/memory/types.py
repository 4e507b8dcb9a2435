"""Small value types of the memory engine."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(slots=True)
class TurnInput:
    message_id: str
    role: str
    content: str
    occurred_at: float | None = None


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def chunk(text: str, size: int, max_chunks: int) -> list[str]:
    """Split long text on paragraph / sentence / word boundaries into <= size pieces."""
    text = text.strip()
    if len(text) <= size:
        return [text] if text else []
    out: list[str] = []
    rest = text
    while rest and len(out) < max_chunks:
        if len(rest) <= size:
            out.append(rest)
            break
        cut = max(rest.rfind("\n", 0, size), rest.rfind(". ", 0, size), rest.rfind(" ", 0, size))
        cut = cut if cut > size // 2 else size
        out.append(rest[:cut].strip())
        rest = rest[cut:].strip()
    return [c for c in out if c]
