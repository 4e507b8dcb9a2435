"""Render a stored session into the chat log; a corrupt row is shown as such."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from cozy.tui.widgets.messages import ChatLog, MessageView, ToolCallView

if TYPE_CHECKING:
    from cozy.storage.store import MessageRow, Store

HISTORY_LIMIT = 200


async def render_history(chat: ChatLog, store: Store, session_id: str) -> int:
    """Mount the session's last messages; returns how many rows were shown."""
    try:
        rows = await store.recent_messages(session_id, HISTORY_LIMIT)
    except Exception as exc:  # unreadable history: say so, keep the app usable
        await chat.add_notice(
            f"⚠ could not read this session's messages: {type(exc).__name__}: {exc}", "error"
        )
        return 0
    widgets: list[Any] = []
    tools: dict[str, ToolCallView] = {}
    for row in rows:
        try:
            widgets.extend(_row_widgets(row, tools))
        except Exception as exc:  # one bad row must not hide the others
            widgets.append(
                MessageView(
                    "error",
                    f"corrupt message {getattr(row, 'id', '?')}: {type(exc).__name__}: {exc}",
                    status="corrupt",
                )
            )
    if widgets:
        await chat.load(widgets)  # the last ones mounted, the rest when scrolled to
    chat.scroll_end(animate=False)
    return len(rows)


def _row_widgets(row: MessageRow, tools: dict[str, ToolCallView]) -> list[Any]:
    if not isinstance(row.content, str):
        raise ValueError(f"content is {type(row.content).__name__}, not text")
    if row.role == "user":
        yours = MessageView("user", row.content, message_id=row.id)  # with its files, if any
        yours.typed, yours.fragments = row.typed, list(row.fragments)
        return [yours]
    if row.role == "assistant":
        out: list[Any] = []
        if row.content or not row.tool_calls:
            note = _note(row)
            out.append(
                MessageView(
                    "assistant", row.content, status=row.status, note=note, message_id=row.id
                )
            )
        for call in row.tool_calls or []:
            if not isinstance(call, dict):
                raise ValueError("tool_calls must be a list of objects")
            view = ToolCallView(
                str(call.get("id", "")), str(call.get("name", "?")), _args(call), None
            )
            tools[view.call_id] = view
            out.append(view)
        return out
    if row.role == "tool":
        tool_view = tools.get(row.tool_call_id or "")
        if tool_view is not None:
            tool_view.done(row.content, is_error=False, duration_ms=0, decision="auto")
            return []
        return [MessageView("tool", row.content)]
    if row.role == "system":
        return []
    raise ValueError(f"unknown role '{row.role}'")


def _args(call: dict[str, Any]) -> str:
    args = call.get("arguments", "{}")
    return args if isinstance(args, str) else json.dumps(args)


def _note(row: MessageRow) -> str:
    if row.status == "interrupted":
        return "interrupted; partial answer"
    if row.status == "failed":
        return str((row.metadata or {}).get("error") or "failed")
    parts = []
    if row.completion_tokens:
        parts.append(f"{row.completion_tokens} tokens")
    if row.latency_ms:
        parts.append(f"{row.latency_ms / 1000:.1f} s")
    return " · ".join(parts)
