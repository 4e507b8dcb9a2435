"""The records one chat turn is made of: the request, the route, the turn's state.

Kept apart from the orchestrator so the stages read top to bottom.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from cozy.core.personalities import Personality
from cozy.core.toolloop import Approver
from cozy.core.types import (
    Caller,
    GenerationOptions,
    ImagePart,
    Message,
    ToolCall,
    ToolSpec,
    Usage,
)
from cozy.engines.base import Route
from cozy.storage.store import NewMessage, SessionRow
from cozy.storage.summaries import Summary

MAX_TOOL_ROUNDS = 10

log = logging.getLogger("cozy.orchestrator")


class TurnSink(Protocol):
    """Told after a turn is persisted (memory/profile jobs hang off this)."""

    async def turn_saved(
        self,
        *,
        user_id: str,
        session_id: str,
        personality_id: str,
        message_ids: list[str],
        messages: list[Message],
    ) -> None: ...


@dataclass(slots=True)
class ChatRequest:
    prompt: str
    caller: Caller = field(default_factory=Caller)
    session: str = "new"  # "new" | "last" | a session id
    personality: str | None = None
    model: str | None = None
    system: str | None = None
    no_context: bool = False
    options: GenerationOptions | None = None
    history: list[Message] | None = None  # stateless clients send their own history
    client_tools: list[ToolSpec] = field(default_factory=list)
    approver: Approver | None = None
    # answers an MCP server's elicitation (a form for the user); None: refused
    elicitor: Callable[..., Awaitable[tuple[str, dict[str, Any] | None]]] | None = None
    request_id: str | None = None
    max_tool_rounds: int = MAX_TOOL_ROUNDS
    images: list[ImagePart] = field(default_factory=list)  # sent with the prompt
    # kept on the stored user message (what was attached: sources, hashes, sizes)
    input_meta: dict[str, Any] | None = None


@dataclass(slots=True)
class Turn:
    req: ChatRequest
    request_id: str
    started: float
    timings: dict[str, float] = field(default_factory=dict)
    session: SessionRow | None = None
    personality: Personality | None = None
    route: Route | None = None
    text: list[str] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    pending: list[NewMessage] = field(default_factory=list)
    user_message_id: str | None = None
    finish_reason: str | None = None
    client_calls: list[ToolCall] = field(default_factory=list)
    context_meta: dict[str, Any] = field(default_factory=dict)
    persisted: bool = False
    tokens: dict[str, Any] = field(default_factory=dict)
    summary: Summary | None = None
    older_exists: bool = False
    window_first_id: str | None = None
    session_unsaved: bool = False  # a new session, stored with the first message
    summary_job: Callable[[Any], Awaitable[Any]] | None = None  # run in the persist transaction

    @property
    def stored(self) -> bool:
        """The user's question is in the store (a failure from here on is kept)."""
        return self.user_message_id is not None


def continuation(req: ChatRequest) -> list[Message]:
    """The trailing assistant tool calls + tool results when a client sends them back."""
    if req.prompt.strip() or not req.history or req.history[-1].role != "tool":
        return []
    start = len(req.history)
    while start > 0 and req.history[start - 1].role == "tool":
        start -= 1
    if start > 0 and req.history[start - 1].role == "assistant":
        start -= 1
    return list(req.history[start:])


def title_of(prompt: str) -> str:
    line = prompt.strip().splitlines()[0] if prompt.strip() else "untitled"
    return line[:80]


def system_prompt(personality: Personality, extra: str | None) -> str:
    if not extra:
        return personality.system_prompt
    return f"{personality.system_prompt.rstrip()}\n\n{extra}"


_MERGED = (
    "temperature",
    "top_p",
    "max_tokens",
    "stop",
    "seed",
    "response_format",
    "tool_choice",
    "parallel_tool_calls",
)


def merge_options(base: GenerationOptions, over: GenerationOptions | None) -> GenerationOptions:
    if over is None:
        return base
    for name in _MERGED:
        value = getattr(over, name)
        if value is not None:
            setattr(base, name, value)
    base.extra.update(over.extra)
    return base


def to_new(m: Message) -> NewMessage:
    calls = [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in m.tool_calls]
    return NewMessage(
        m.role, m.content, tool_calls=calls or None, tool_call_id=m.tool_call_id, name=m.name
    )


def answer_every_call(pending: list[NewMessage]) -> list[NewMessage]:
    """The turn's tool rounds with a result for every call: a call cut off by Ctrl-C
    (or never reached) gets a tool message saying so, so the stored history stays a
    sequence a model API accepts."""
    from cozy.core.history import UNANSWERED

    out: list[NewMessage] = []
    open_calls: list[dict[str, Any]] = []

    def close_round() -> None:
        for c in open_calls:
            out.append(
                NewMessage("tool", UNANSWERED, tool_call_id=str(c.get("id")), name=c.get("name"))
            )
        open_calls.clear()

    for m in pending:
        if m.role == "tool":
            open_calls[:] = [c for c in open_calls if c.get("id") != m.tool_call_id]
        else:
            close_round()
        out.append(m)
        if m.role == "assistant" and m.tool_calls:
            open_calls.extend(m.tool_calls)
    close_round()
    return out


def brief_context(meta: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "enabled_engines",
        "degraded",
        "degrade_reasons",
        "memory_ids",
        "profile_slots",
        "knowledge",
        "engines",
    )
    return {k: meta[k] for k in keys if k in meta}


def summary_job(
    session_id: str, user_id: str, model: str, *, keep_recent: int
) -> Callable[[Any], Awaitable[Any]]:
    """Queue (or re-arm) the session's summary job inside a store transaction.

    Same job as `Summarizer.request`, written with the turn's messages (one transaction).
    """

    async def step(conn: Any) -> Any:
        from cozy.core.summaries import JOB_KIND
        from cozy.storage.jobs import enqueue

        payload = {"session_id": session_id, "model": model, "keep_recent": keep_recent}
        return await enqueue(conn, JOB_KIND, payload, user_id=user_id, key=f"summary:{session_id}")

    return step


def log_turn(turn: Turn, status: str) -> None:
    """The structured `chat turn` log line (nothing is built when INFO is off)."""
    if not log.isEnabledFor(logging.INFO):
        return
    engines = turn.context_meta.get("engines", {})
    log.info(
        "chat turn",
        extra={
            "request_id": turn.request_id,
            "user_id": turn.req.caller.user_id,
            "session_id": turn.session.id if turn.session else None,
            "personality_id": turn.personality.id if turn.personality else None,
            "latency_ms": round((time.perf_counter() - turn.started) * 1000, 2),
            "status": status,
            "timings": dict(turn.timings),
            "engines": engines,
        },
    )
