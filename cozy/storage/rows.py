"""Rows the store returns and takes: small dataclasses, no ORM objects."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from cozy.storage.schema import new_id

if TYPE_CHECKING:
    from cozy.storage.attach import Fragment

T = TypeVar("T")


@dataclass(slots=True)
class SessionRow:
    id: str
    user_id: str
    personality_id: str
    title: str | None
    model: str | None
    created_at: float
    updated_at: float
    deleted_at: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    message_count: int | None = None


@dataclass(slots=True)
class MessageRow:
    id: str
    session_id: str
    role: str
    content: str
    tool_calls: list[dict[str, Any]] | None
    tool_call_id: str | None
    name: str | None
    status: str
    metadata: dict[str, Any]
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_ms: float | None
    created_at: float
    # a user message's attached fragments (their text kept once, see attach.py): when
    # there are any, `content` is the whole prompt as the model saw it and `typed`
    # is what the user wrote around them
    fragments: list[Fragment] = field(default_factory=list)
    typed: str | None = None

    @property
    def own_text(self) -> str:
        """What the user wrote (without the attached fragments)."""
        return self.content if self.typed is None else self.typed


@dataclass(slots=True)
class NewMessage:
    role: str
    content: str
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    name: str | None = None
    status: str = "complete"
    metadata: dict[str, Any] | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: float | None = None
    id: str | None = None
    # kept once by hash and linked to the message; `content` is then the user's own
    # words only (reading the message back puts the fragments in front again)
    fragments: list[Fragment] = field(default_factory=list)


@functools.cache
def _fields(cls: Any) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def from_row(cls: Callable[..., T], row: Any, **given: Any) -> T:
    """A row dataclass from a result row: each field from the column of its name (a
    field the row has no column for keeps its default), the `given` ones as passed.
    For rows read now and then (keys, summaries, jobs): see `session_of`."""
    values = dict(row._mapping)
    return cls(**{n: values[n] for n in _fields(cls) if n in values and n not in given}, **given)


# Spelled out, not `from_row`: every turn reads its history through these, and the
# generic mapping costs about three times as much a row
def session_of(row: Any) -> SessionRow:
    m = row._mapping
    return SessionRow(
        id=m["id"],
        user_id=m["user_id"],
        personality_id=m["personality_id"],
        title=m["title"],
        model=m["model"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        deleted_at=m["deleted_at"],
        metadata=m["metadata"] or {},
        message_count=m.get("message_count"),
    )


def message_of(row: Any) -> MessageRow:
    m = row._mapping
    return MessageRow(
        id=m["id"],
        session_id=m["session_id"],
        role=m["role"],
        content=m["content"],
        tool_calls=m["tool_calls"],
        tool_call_id=m["tool_call_id"],
        name=m["name"],
        status=m["status"],
        metadata=m["metadata"] or {},
        prompt_tokens=m["prompt_tokens"],
        completion_tokens=m["completion_tokens"],
        latency_ms=m["latency_ms"],
        created_at=m["created_at"],
    )


def session_params(row: SessionRow) -> dict[str, Any]:
    """Insert parameters for a new session row (for `sessions.insert()`)."""
    return {
        "id": row.id,
        "user_id": row.user_id,
        "personality_id": row.personality_id,
        "title": row.title,
        "model": row.model,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "metadata": row.metadata,
    }


def message_rows(session_id: str, items: Sequence[NewMessage], now: float) -> list[dict[str, Any]]:
    """Insert parameters for new messages (ids kept in order by a microsecond step)."""
    return [
        {
            "id": m.id or new_id("msg"),
            "session_id": session_id,
            "role": m.role,
            "content": m.content,
            "tool_calls": m.tool_calls,
            "tool_call_id": m.tool_call_id,
            "name": m.name,
            "status": m.status,
            "metadata": _with_listed(m),
            "prompt_tokens": m.prompt_tokens,
            "completion_tokens": m.completion_tokens,
            "latency_ms": m.latency_ms,
            "created_at": now + i * 1e-6,
        }
        for i, m in enumerate(items)
    ]


def _with_listed(m: NewMessage) -> dict[str, Any]:
    """The metadata, naming the fragments when there are any: readers look links up
    only for messages that say they have some (see `Store.with_fragments`)."""
    if not m.fragments:
        return m.metadata or {}
    from cozy.storage.attach import listed

    return {**(m.metadata or {}), "fragments": listed(m.fragments)}
