"""Plain data shared by core, engines and faces.

Dataclasses with slots: cheap to build on the hot path, no validation cost.
Validation happens at the edges (config files, HTTP bodies) with pydantic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]
SideEffect = Literal["read-only", "write", "network", "dangerous"]

# How severe a tool server's log message is: RFC 5424 severities as MCP names them,
# least severe first. One list for every filter (`cozy tools logs --level`, the live
# `tool_log` events of `cozy run --tool-logs`, the TUI), so a level means the same
# everywhere.
LOG_LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")


def log_at_least(level: str, floor: str) -> bool:
    """Is `level` as severe as `floor`? (an unknown level counts as info)"""
    rank = {name: i for i, name in enumerate(LOG_LEVELS)}
    return rank.get(level, 1) >= rank.get(floor, 0)


@dataclass(slots=True)
class ToolCall:
    """One tool call requested by the model. `arguments` is the raw JSON text."""

    id: str
    name: str
    arguments: str = "{}"
    index: int = 0


@dataclass(slots=True, frozen=True)
class ImagePart:
    """An image sent with a user message (`cozy run -a photo.png`), base64-encoded."""

    mime: str
    data: str  # base64
    source: str = ""  # the path or URL it came from (for messages and metadata)

    @property
    def data_url(self) -> str:
        return f"data:{self.mime};base64,{self.data}"


def b64_size(data: str) -> int:
    """The decoded size of base64 text, without decoding it."""
    return len(data) * 3 // 4 - data[-2:].count("=") if data else 0


@dataclass(slots=True, frozen=True)
class MediaPart:
    """An image or audio clip a tool returned (MCP image / audio content), base64."""

    kind: Literal["image", "audio"]
    mime: str
    data: str  # base64

    @property
    def size(self) -> int:
        return b64_size(self.data)

    def describe(self, n: int) -> str:
        """How the tool's text names it: `[image 1: image/png, 1234 bytes]`."""
        return f"[{self.kind} {n}: {self.mime}, {self.size} bytes]"


@dataclass(slots=True)
class Message:
    role: Role
    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None
    images: list[ImagePart] = field(default_factory=list)

    def to_openai(self) -> dict[str, Any]:
        content: str | list[dict[str, Any]] = self.content
        if self.images:  # OpenAI's content parts: the text, then each image
            content = [{"type": "text", "text": self.content}] + [
                {"type": "image_url", "image_url": {"url": i.data_url}} for i in self.images
            ]
        out: dict[str, Any] = {"role": self.role, "content": content}
        if self.tool_calls:
            out["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in self.tool_calls
            ]
        if self.tool_call_id:
            out["tool_call_id"] = self.tool_call_id
        if self.name and self.role == "tool":
            out["name"] = self.name
        return out


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, other: Usage | None) -> None:
        if other is not None:
            self.prompt_tokens += other.prompt_tokens
            self.completion_tokens += other.completion_tokens

    def to_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass(slots=True)
class StreamChunk:
    """What an AI engine's `chat_stream` yields.

    Text arrives as `delta`. Tool calls are assembled by the provider (deltas joined
    by `index`) and yielded once, complete, in the final chunk together with
    `finish_reason` and `usage` (when the provider reports it).
    """

    delta: str = ""
    tool_calls: list[ToolCall] | None = None
    finish_reason: str | None = None
    usage: Usage | None = None


@dataclass(slots=True)
class ChatResult:
    """What an AI engine's non-streaming `chat` returns."""

    content: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = "stop"
    usage: Usage | None = None
    model: str = ""


@dataclass(slots=True)
class ModelInfo:
    id: str
    provider: str
    context_window: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class GenerationOptions:
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    seed: int | None = None
    response_format: dict[str, Any] | None = None
    context_window: int | None = None  # providers that take it (Ollama's num_ctx) send it
    # OpenAI's tool_choice ("auto" | "none" | "required" | {"type": "function", ...}) and
    # parallel_tool_calls: sent with the tools by providers that support them
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ToolSpec:
    """A tool as offered to the model, with cozy's side-effect level."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object"})
    level: SideEffect = "dangerous"
    server: str = "builtin"

    @property
    def wire_name(self) -> str:
        """The name sent to the model: OpenAI allows only [a-zA-Z0-9_-] in names."""
        return self.name.replace(".", "__")

    def to_openai(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.wire_name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


@dataclass(slots=True)
class ToolOutput:
    content: str
    is_error: bool = False
    truncated: bool = False
    duration_ms: float = 0.0
    # images / audio the tool returned, each named in `content` by `MediaPart.describe`
    media: list[MediaPart] = field(default_factory=list)


@dataclass(slots=True)
class MemoryHit:
    id: str
    text: str
    score: float = 0.0
    source_message_ids: list[str] = field(default_factory=list)
    created_at: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class KnowledgeHit:
    id: str
    text: str
    score: float = 0.0
    citation: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ProfileSlot:
    topic: str
    slot: str
    value: str
    confidence: float = 1.0
    updated_at: str | None = None


@dataclass(slots=True)
class Profile:
    summary: str = ""
    slots: list[ProfileSlot] = field(default_factory=list)


@dataclass(slots=True)
class Caller:
    """Who is asking: identity and permissions, checked in the prepare stage."""

    user_id: str = "local"
    role: Literal["user", "admin"] = "admin"
    face: Literal["cli", "tui", "server", "voice"] = "cli"
    # globs: on the cli/tui faces (admin) the tools this run may use, whether or not the
    # personality lists them; elsewhere a further narrowing of the personality's tools
    allowed_tools: list[str] | None = None
    auto_approve: bool = False  # approve write/network tools that `allowed_tools` names
    auto_approve_dangerous: bool = False  # ... and dangerous ones too
