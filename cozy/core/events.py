"""The orchestrator's event stream: small typed records every face renders.

The TUI draws them, the server maps them to OpenAI chunks, `cozy run` folds them
into JSON. `to_dict()` gives the JSON-lines shape of `cozy run --json --stream`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, NotRequired, TypedDict

from cozy.core.errors import CozyError
from cozy.core.types import SideEffect, ToolCall


@dataclass(slots=True)
class ChatEvent:
    type: ClassVar[str] = "event"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **asdict(self)}


@dataclass(slots=True)
class Started(ChatEvent):
    type: ClassVar[str] = "started"
    request_id: str
    session_id: str
    personality_id: str
    model: str
    user_message_id: str | None = None
    provider_reason: str = ""  # why this provider answers (see Route.reason)


class EngineReport(TypedDict):
    latency_ms: float
    degraded: bool  # answered, but with less than it should have (or not at all)


class BriefContext(TypedDict):
    """What a saved answer keeps of its context (the message's `metadata.context`)."""

    enabled_engines: list[str]
    degraded: bool
    degrade_reasons: list[str]
    memory_ids: list[str]
    profile_slots: list[str]
    knowledge: list[dict[str, Any]]  # id, citation, score
    engines: dict[str, EngineReport]


class SummaryUse(TypedDict):
    id: str
    messages: int
    used: bool


class ContextMeta(BriefContext):
    """What the context stage did: a plain dict on the wire (`cozy run --json`, the
    server's context chunk), typed here so every key is named once."""

    memories: list[dict[str, Any]]  # id, text, score
    token_budget: dict[str, Any]
    queued_ms: NotRequired[float]  # the wait for a context slot (a busy server)
    summary: NotRequired[SummaryUse]
    summary_requested: NotRequired[bool]


def context_meta() -> ContextMeta:
    """An empty record, filled by the context stage."""
    return ContextMeta(
        enabled_engines=[],
        degraded=False,
        degrade_reasons=[],
        engines={},
        memory_ids=[],
        memories=[],
        knowledge=[],
        profile_slots=[],
        token_budget={},
    )


def brief(meta: ContextMeta) -> BriefContext:
    """The part of the context record stored with the answer."""
    out: dict[str, Any] = {k: meta[k] for k in BriefContext.__annotations__}  # type: ignore[literal-required]
    return out  # type: ignore[return-value]


@dataclass(slots=True)
class ContextBuilt(ChatEvent):
    """What the context stage did: engines asked, degradation and why, latency, items."""

    type: ClassVar[str] = "context"
    metadata: ContextMeta


@dataclass(slots=True)
class TextDelta(ChatEvent):
    type: ClassVar[str] = "delta"
    text: str


@dataclass(slots=True)
class ToolCallRequested(ChatEvent):
    type: ClassVar[str] = "tool_call"
    call: ToolCall
    level: SideEffect | None = None
    client_side: bool = False


@dataclass(slots=True)
class ToolApprovalNeeded(ChatEvent):
    type: ClassVar[str] = "tool_approval"
    call: ToolCall
    level: SideEffect


@dataclass(slots=True)
class ToolResult(ChatEvent):
    type: ClassVar[str] = "tool_result"
    call_id: str
    name: str
    content: str
    is_error: bool = False
    duration_ms: float = 0.0
    decision: str = "auto"
    # images / audio the tool returned: type, mime, bytes, to_model (never the data)
    media: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class ToolProgress(ChatEvent):
    """A running tool's progress (MCP progress notifications)."""

    type: ClassVar[str] = "tool_progress"
    call_id: str
    name: str
    progress: float | None = None
    total: float | None = None
    message: str | None = None


@dataclass(slots=True)
class ToolLog(ChatEvent):
    """A message a tool's MCP server logged (notifications/message) while the call ran,
    at or above the turn's `tool_log_level`; at most a few per call (the rest are in
    `cozy tools logs SERVER`)."""

    type: ClassVar[str] = "tool_log"
    call_id: str
    name: str
    server: str
    level: str
    text: str
    logger: str | None = None


@dataclass(slots=True)
class MessageSaved(ChatEvent):
    type: ClassVar[str] = "saved"
    message_id: str
    role: str
    status: str


@dataclass(slots=True)
class Done(ChatEvent):
    type: ClassVar[str] = "done"
    session_id: str
    message_id: str | None
    text: str
    status: str
    finish_reason: str | None
    model: str
    usage: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    tokens: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TurnError:
    """Why a turn failed, typed once for every face: the OpenAI-style `type` and `code`,
    the message (with its hint), the HTTP status the server answers with and the exit
    code of `cozy run` (2 for a request the caller must change, else 1)."""

    type: str
    code: str
    message: str
    http_status: int = 500
    exit_code: int = 1
    retry_after: int | None = None  # seconds, when the failure is "busy, come back"

    @classmethod
    def of(cls, exc: BaseException) -> TurnError:
        if isinstance(exc, CozyError):
            usage = exc.error_type == "invalid_request_error"
            retry = exc.to_dict().get("retry_after")
            return cls(
                exc.error_type,
                exc.code,
                str(exc),
                exc.http_status,
                2 if usage else 1,
                int(str(retry)) if retry is not None else None,
            )
        return cls("server_error", "internal_error", f"{type(exc).__name__}: {exc}")

    def to_dict(self) -> dict[str, Any]:
        """The wire shape (`cozy run --json`, the server's error bodies)."""
        out: dict[str, Any] = {"type": self.type, "code": self.code, "message": self.message}
        if self.retry_after is not None:
            out["retry_after"] = self.retry_after
        return out

    def __getitem__(self, key: str) -> Any:
        """`error["code"]`: the dict this record replaced reads the same (tests, plugins)."""
        return self.to_dict()[key]


@dataclass(slots=True)
class Failed(ChatEvent):
    type: ClassVar[str] = "error"
    error: TurnError
    session_id: str | None = None
    message_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "error": self.error.to_dict(),
            "session_id": self.session_id,
            "message_id": self.message_id,
        }
