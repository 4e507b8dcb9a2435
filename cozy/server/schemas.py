"""Request bodies as msgspec Structs: typed validation (400 on bad input) and OpenAPI.

Unknown fields are accepted and ignored, as OpenAI clients send many optional ones.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

MAX_TOKENS_LIMIT = 262_144

Name = Annotated[str, Meta(min_length=1, max_length=200)]


class FunctionCallIn(msgspec.Struct, kw_only=True):
    name: str
    arguments: str = "{}"


class ToolCallIn(msgspec.Struct, kw_only=True):
    id: str
    function: FunctionCallIn
    type: str = "function"


class ChatMessageIn(msgspec.Struct, kw_only=True):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        parts = []
        for part in self.content:
            if part.get("type") in ("text", "input_text") and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return "\n".join(parts)


class FunctionSpecIn(msgspec.Struct, kw_only=True):
    name: Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")]
    description: str = ""
    parameters: dict[str, Any] | None = None


class ToolIn(msgspec.Struct, kw_only=True):
    type: Literal["function"] = "function"
    function: FunctionSpecIn


class StreamOptions(msgspec.Struct, kw_only=True):
    include_usage: bool = False


class ChatCompletionRequest(msgspec.Struct, kw_only=True):
    model: Annotated[str, Meta(min_length=1, max_length=200)]
    messages: Annotated[list[ChatMessageIn], Meta(min_length=1, max_length=10_000)]
    stream: bool = False
    stream_options: StreamOptions | None = None
    tools: list[ToolIn] | None = None
    tool_choice: str | dict[str, Any] | None = None
    temperature: Annotated[float, Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, Meta(gt=0, le=1)] | None = None
    max_tokens: Annotated[int, Meta(ge=1, le=MAX_TOKENS_LIMIT)] | None = None
    max_completion_tokens: Annotated[int, Meta(ge=1, le=MAX_TOKENS_LIMIT)] | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    n: Annotated[int, Meta(ge=1, le=1)] | None = None
    response_format: dict[str, Any] | None = None
    user: Annotated[str, Meta(max_length=256)] | None = None
    metadata: dict[str, str] | None = None


class EmbeddingRequest(msgspec.Struct, kw_only=True):
    input: (
        Annotated[str, Meta(max_length=1_000_000)]
        | Annotated[list[str], Meta(min_length=1, max_length=2048)]
    )
    model: str = "cozy-embed"
    encoding_format: Literal["float", "base64"] = "float"
    user: str | None = None


class SessionCreate(msgspec.Struct, kw_only=True):
    personality: Annotated[str, Meta(max_length=64)] | None = None
    title: Annotated[str, Meta(max_length=300)] | None = None
    model: Annotated[str, Meta(max_length=200)] | None = None


class SessionUpdate(msgspec.Struct, kw_only=True):
    title: Annotated[str, Meta(min_length=1, max_length=300)]


class PersonalityIn(msgspec.Struct, kw_only=True):
    id: Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=64)]
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    system_prompt: Annotated[str, Meta(min_length=1, max_length=100_000)]
    description: str = ""
    model: str | None = None
    tools: list[str] = msgspec.field(default_factory=list)
    token_budget: Annotated[int, Meta(gt=0)] | None = None
