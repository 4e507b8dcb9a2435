"""Stored message rows back into model messages."""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

from cozy.core.types import Message, Role, ToolCall
from cozy.storage.store import MessageRow

UNANSWERED = (
    "no result: the call was interrupted or never ran (the turn stopped before it finished)"
)


def to_messages(rows: Iterable[MessageRow]) -> list[Message]:
    """Rebuild the conversation as a sequence a model API accepts (see `valid_sequence`)."""
    out: list[Message] = []
    for row in rows:
        if row.role not in ("user", "assistant", "tool", "system"):
            continue
        if row.role == "assistant" and not row.content and not row.tool_calls:
            continue  # an answer stopped before it said anything
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
    return valid_sequence(out)


def valid_sequence(messages: list[Message]) -> list[Message]:
    """Every assistant tool call followed by one result, and no tool result without
    its call (OpenAI-style APIs reject either). Repairs what an interrupted turn, or
    a window that starts between a call and its result, leaves behind."""
    out: list[Message] = []
    i = 0
    while i < len(messages):
        m = messages[i]
        if m.role == "tool":  # its call is not in the window (or was never stored)
            i += 1
            continue
        out.append(m)
        i += 1
        if m.role != "assistant" or not m.tool_calls:
            continue
        results: dict[str, Message] = {}
        while i < len(messages) and messages[i].role == "tool":
            r = messages[i]
            if r.tool_call_id and r.tool_call_id not in results:
                results[r.tool_call_id] = r
            i += 1
        for call in m.tool_calls:
            out.append(
                results.get(call.id)
                or Message("tool", UNANSWERED, tool_call_id=call.id, name=call.name)
            )
    return out
