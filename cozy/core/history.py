"""Stored message rows back into model messages."""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

from cozy.core.types import Message, Role, ToolCall
from cozy.storage.store import MessageRow


def to_messages(rows: Iterable[MessageRow]) -> list[Message]:
    """Rebuild the conversation; drop answers that failed before saying anything."""
    out: list[Message] = []
    for row in rows:
        if row.role not in ("user", "assistant", "tool", "system"):
            continue
        if row.role == "assistant" and row.status == "failed" and not row.content:
            continue
        calls = [
            ToolCall(
                id=str(c.get("id", "")),
                name=str(c.get("name", "")),
                arguments=str(c.get("arguments", "{}")),
                index=i,
            )
            for i, c in enumerate(row.tool_calls or [])
            if isinstance(c, dict)
        ]
        out.append(
            Message(
                cast(Role, row.role),
                row.content or "",
                tool_calls=calls,
                tool_call_id=row.tool_call_id,
                name=row.name,
            )
        )
    return out
