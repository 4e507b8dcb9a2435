"""Token use per user, UTC day and model, read from the saved assistant messages.

Every turn (CLI, TUI, server) saves its assistant message with the model and the
token counts the model reported, so the accounting needs no table of its own.
Grouped in Python rather than SQL: the JSON `model` field is read the same way on
SQLite and Postgres, and the rows are one per answer in the asked period.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from cozy.storage.schema import messages, sessions
from cozy.storage.store import Store


@dataclass(slots=True)
class UsageRow:
    day: str
    user_id: str
    model: str
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


async def usage_by_day(
    store: Store, *, user_id: str | None = None, days: int = 30, now: float | None = None
) -> list[UsageRow]:
    since = (now or time.time()) - days * 86400
    stmt = (
        sa.select(
            messages.c.created_at,
            sessions.c.user_id,
            messages.c.metadata,
            messages.c.prompt_tokens,
            messages.c.completion_tokens,
        )
        .join(sessions, sessions.c.id == messages.c.session_id)
        .where(messages.c.role == "assistant", messages.c.created_at >= since)
    )
    if user_id is not None:
        stmt = stmt.where(sessions.c.user_id == user_id)
    groups: dict[tuple[str, str, str], UsageRow] = {}
    for created, user, meta, prompt, completion in await store.read(stmt):
        day = datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%d")
        model = str((meta or {}).get("model") or "unknown")
        row = groups.setdefault((day, user, model), UsageRow(day, user, model))
        row.requests += 1
        row.prompt_tokens += int(prompt or 0)
        row.completion_tokens += int(completion or 0)
    return sorted(groups.values(), key=lambda r: (r.day, r.user_id, r.model))
