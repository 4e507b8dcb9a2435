"""The records one chat turn is made of: the request, the route, the turn's state.

Kept apart from the orchestrator so the stages read top to bottom.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from cozy.core.events import ContextMeta
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
from cozy.storage.attach import Fragment, assemble
from cozy.storage.store import NewMessage, SessionRow
from cozy.storage.summaries import Summary

MAX_TOOL_ROUNDS = 10

log = logging.getLogger("cozy.orchestrator")


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
    # the least severe log message of a running MCP tool shown live (`tool_log` events;
    # level names as in `cozy tools logs --level`; "off": none)
    tool_log_level: str = "info"
    # texts sent in front of `prompt`, each fenced and labelled (files, pages, stdin);
    # stored once by hash, the user's message keeping only `prompt` and the links
    fragments: list[Fragment] = field(default_factory=list)


def full_prompt(req: ChatRequest) -> str:
    """The user's message as the model sees it: the fragments, then `req.prompt`."""
    return assemble(req.fragments, req.prompt) if req.fragments else req.prompt


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
    context_meta: ContextMeta | None = None
    persisted: bool = False
    tokens: dict[str, Any] = field(default_factory=dict)
    summary: Summary | None = None
    older_exists: bool = False
    window_first_id: str | None = None
    session_unsaved: bool = False  # a new session, stored with the first message
    summary_job: Callable[[Any], Awaitable[Any]] | None = None  # run in the persist transaction
    prompt: str = ""  # the user's message as the model sees it (`full_prompt`)

    @property
    def stored(self) -> bool:
        """The user's question is in the store (a failure from here on is kept)."""
        return self.user_message_id is not None


def continuation(req: ChatRequest) -> list[Message]:
    """The trailing assistant tool calls + tool results when a client sends them back."""
    if req.prompt.strip() or req.fragments or not req.history or req.history[-1].role != "tool":
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


def title_of_request(req: ChatRequest) -> str:
    """The question's first line; for attached files alone, what was attached."""
    if req.prompt.strip() or not req.fragments:
        return title_of(req.prompt)
    return title_of(", ".join(f.source for f in req.fragments))


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


def log_turn(turn: Turn, status: str) -> None:
    """The structured `chat turn` log line (nothing is built when INFO is off)."""
    if not log.isEnabledFor(logging.INFO):
        return
    engines = turn.context_meta["engines"] if turn.context_meta else {}
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
