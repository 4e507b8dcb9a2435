"""Request bodies as msgspec Structs: typed validation (400 on bad input) and OpenAPI.

Unknown fields are accepted and ignored, as OpenAI clients send many optional ones.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

MAX_TOKENS_LIMIT = 262_144
MAX_CHOICES = 16  # n > 1 runs one upstream call per choice, in parallel: bounded

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

    def file_parts(self) -> list[dict[str, Any]]:
        """The `file` parts' objects (`filename`, `file_data` or `file_id`), in order;
        the Responses API's `input_file` carries the same fields on the part itself."""
        if not isinstance(self.content, list):
            return []
        out = []
        for part in self.content:
            if part.get("type") == "file" and isinstance(part.get("file"), dict):
                out.append(part["file"])
            elif part.get("type") == "input_file":
                out.append(part)
        return out

    def image_urls(self) -> list[str]:
        """The `image_url` parts' URLs (OpenAI's content parts for images)."""
        if not isinstance(self.content, list):
            return []
        out = []
        for part in self.content:
            ref = part.get("image_url") if part.get("type") == "image_url" else None
            url = ref.get("url") if isinstance(ref, dict) else ref
            if isinstance(url, str):
                out.append(url)
        return out


class FunctionSpecIn(msgspec.Struct, kw_only=True):
    name: Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")]
    description: str = ""
    parameters: dict[str, Any] | None = None


class ToolIn(msgspec.Struct, kw_only=True):
    type: Literal["function"] = "function"
    function: FunctionSpecIn


class NamedFunction(msgspec.Struct, kw_only=True):
    name: Annotated[str, Meta(min_length=1, max_length=64)]


class NamedToolChoice(msgspec.Struct, kw_only=True):
    type: Literal["function"]
    function: NamedFunction


class StreamOptions(msgspec.Struct, kw_only=True):
    include_usage: bool = False


class ChatCompletionRequest(msgspec.Struct, kw_only=True):
    model: Annotated[str, Meta(min_length=1, max_length=200)]
    messages: Annotated[list[ChatMessageIn], Meta(min_length=1, max_length=10_000)]
    stream: bool = False
    stream_options: StreamOptions | None = None
    tools: list[ToolIn] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    temperature: Annotated[float, Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, Meta(ge=0, le=1)] | None = None
    max_tokens: Annotated[int, Meta(ge=1, le=MAX_TOKENS_LIMIT)] | None = None
    max_completion_tokens: Annotated[int, Meta(ge=1, le=MAX_TOKENS_LIMIT)] | None = None
    stop: str | list[str] | None = None
    seed: Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)] | None = None
    n: Annotated[int, Meta(ge=1, le=MAX_CHOICES)] | None = None
    response_format: dict[str, Any] | None = None
    user: Annotated[str, Meta(max_length=256)] | None = None
    metadata: dict[str, str] | None = None


Token = Annotated[int, Meta(ge=0, le=2**31)]


class EmbeddingRequest(msgspec.Struct, kw_only=True):
    # a string, strings, token ids, or arrays of token ids (OpenAI's four forms);
    # msgspec allows one array type in a union, so the element types are checked in
    # `inputs()`
    input: (
        Annotated[str, Meta(max_length=1_000_000)]
        | Annotated[list[str | Token | list[Token]], Meta(min_length=1, max_length=2048)]
    )
    model: str = "cozy-embed"
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[int, Meta(ge=1)] | None = None
    user: str | None = None

    def inputs(self) -> list[str] | list[list[int]]:
        """The input as texts or as token arrays; mixed lists raise ValueError."""
        if isinstance(self.input, str):
            return [self.input]
        items = self.input
        if all(isinstance(x, str) for x in items):
            return [x for x in items if isinstance(x, str)]
        if all(isinstance(x, int) for x in items):
            return [[x for x in items if isinstance(x, int)]]
        if all(isinstance(x, list) and x for x in items):
            return [x for x in items if isinstance(x, list)]
        raise ValueError(
            "input must be a string, a list of strings, a list of token ids, or a list of "
            "non-empty lists of token ids (not a mix)"
        )


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
