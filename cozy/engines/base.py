"""Engine contracts.

Every engine kind is a small ABC on top of `BaseEngine` (initialize / health_check /
close / api_version). Core depends on these classes only, never on a provider.
Providers are registered by name (see `registry.py`) and built from engines.yaml.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, ClassVar

from cozy.core.types import (
    Caller,
    ChatResult,
    GenerationOptions,
    KnowledgeHit,
    MemoryHit,
    Message,
    ModelInfo,
    Profile,
    StreamChunk,
    ToolOutput,
    ToolSpec,
)

ENGINE_API_VERSION = "v1"


@dataclass(slots=True)
class Health:
    ok: bool
    detail: str = ""
    fix: str = ""


class BaseEngine(ABC):  # noqa: B024 - the lifecycle hooks are optional on purpose
    """Lifecycle shared by every engine. Options come from engines.yaml."""

    kind: ClassVar[str] = ""
    provider_name: ClassVar[str] = ""
    api_version: ClassVar[str] = ENGINE_API_VERSION

    def __init__(self, options: dict[str, Any] | None = None, **deps: Any) -> None:
        self.options: dict[str, Any] = dict(options or {})
        self.deps = deps

    async def initialize(self) -> None:  # noqa: B027 - optional hook
        """Open connections, load models. Called once, lazily, before first use."""

    async def health_check(self) -> Health:
        return Health(ok=True)

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources. Must be safe to call twice."""


class AIEngine(BaseEngine):
    kind = "ai"
    can_stream: ClassVar[bool] = True
    supports_tools: ClassVar[bool] = True
    default_model: str = ""

    @abstractmethod
    async def chat(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        tools: Sequence[ToolSpec] | None = None,
        options: GenerationOptions | None = None,
    ) -> ChatResult: ...

    @abstractmethod
    def chat_stream(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        tools: Sequence[ToolSpec] | None = None,
        options: GenerationOptions | None = None,
    ) -> AsyncIterator[StreamChunk]: ...

    @abstractmethod
    async def list_models(self) -> list[ModelInfo]: ...

    async def context_window(self, model: str) -> int | None:
        """The model's context window in tokens, when the provider can tell."""
        return None


@dataclass(slots=True)
class ToolContext:
    """Who calls a tool, for policy and audit."""

    caller: Caller
    session_id: str | None = None
    personality_id: str | None = None
    request_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ToolsEngine(BaseEngine):
    kind = "tools"

    @abstractmethod
    async def list_tools(self) -> list[ToolSpec]: ...

    async def list_tools_for(self, patterns: Sequence[str]) -> tuple[list[ToolSpec], list[str]]:
        """The tools whose names match one of `patterns` (globs), and the reasons some
        could not be listed (user-facing). Providers with servers override it to start
        only the servers the globs can reach."""
        specs = await self.list_tools()
        return [s for s in specs if any(fnmatchcase(s.name, p) for p in patterns)], []

    @abstractmethod
    async def execute_tool(
        self, name: str, arguments: dict[str, Any], ctx: ToolContext
    ) -> ToolOutput: ...


class KnowledgeEngine(BaseEngine):
    kind = "knowledge"

    @abstractmethod
    async def search_knowledge(
        self,
        query: str,
        *,
        user_id: str,
        collections: Sequence[str] | None = None,
        limit: int = 5,
    ) -> list[KnowledgeHit]: ...

    @abstractmethod
    async def add_knowledge(
        self,
        text: str,
        *,
        user_id: str,
        collection: str = "default",
        source: str = "",
        metadata: dict[str, Any] | None = None,
    ) -> str: ...


class ProfileEngine(BaseEngine):
    kind = "profile"

    @abstractmethod
    async def get_profile(self, user_id: str, *, max_tokens: int = 300) -> Profile: ...

    @abstractmethod
    async def update_profile(
        self, user_id: str, messages: Sequence[Message], *, source_ids: Sequence[str] = ()
    ) -> None: ...


class MemoryEngine(BaseEngine):
    kind = "memory"

    @abstractmethod
    async def search_memories(
        self,
        query: str,
        *,
        user_id: str,
        limit: int = 5,
        personality_id: str | None = None,
        session_id: str | None = None,
    ) -> list[MemoryHit]: ...

    @abstractmethod
    async def add_memory(
        self,
        messages: Sequence[Message],
        *,
        user_id: str,
        session_id: str | None = None,
        personality_id: str | None = None,
        source_ids: Sequence[str] = (),
    ) -> list[str]: ...


class EmbedEngine(BaseEngine):
    kind = "embed"
    dimensions: int = 0

    @abstractmethod
    async def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


@dataclass(slots=True)
class TranscriptEvent:
    """A streaming transcription result: partials while audio arrives, then one final."""

    text: str
    final: bool = False
    start: float | None = None  # seconds into the stream, when the provider knows
    end: float | None = None


class VoiceEngine(BaseEngine):
    """Speech in and out. PCM on this interface is 16-bit little-endian mono."""

    kind = "voice"
    output_rate: int = 24_000  # sample rate of what `speak_stream` yields

    @abstractmethod
    async def transcribe(self, pcm: bytes, sample_rate: int) -> str: ...

    @abstractmethod
    def speak_stream(self, text: AsyncIterator[str]) -> AsyncIterator[bytes]: ...

    async def transcribe_stream(
        self, chunks: AsyncIterator[bytes], sample_rate: int
    ) -> AsyncIterator[TranscriptEvent]:
        """Partial results where the provider supports them; the default answers once."""
        data = b"".join([c async for c in chunks])
        yield TranscriptEvent(await self.transcribe(data, sample_rate), final=True)

    async def create_realtime_session(self, **options: Any) -> Any:
        """A full-duplex session (audio in, events and audio out), where supported."""
        raise NotImplementedError(f"the {self.provider_name} voice provider has no realtime mode")


ENGINE_KINDS: dict[str, type[BaseEngine]] = {
    "ai": AIEngine,
    "tools": ToolsEngine,
    "knowledge": KnowledgeEngine,
    "profile": ProfileEngine,
    "memory": MemoryEngine,
    "embed": EmbedEngine,
    "voice": VoiceEngine,
}
