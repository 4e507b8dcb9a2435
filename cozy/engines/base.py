"""Engine contracts.

Every engine kind is a small ABC on top of `BaseEngine` (initialize / health_check /
close / api_version). Core depends on these classes only, never on a provider.
Providers are registered by name (see `registry.py`) and built from engines.yaml.

What a provider needs from the house (store, cache, model router, embedder, redis,
settings) arrives once, typed, as an `EngineContext` built by the runtime. What a
face may need beyond an engine kind's ABC (managing memories, ingesting paths,
transcribing clips…) is a capability protocol in `capabilities.py`: faces test for
those, never for a provider class.

The engine kinds' ABCs are the contract a provider author reads, in one place; the
records of a transcription (voice) are in `transcript.py`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from cozy.core.errors import ConfigError
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
from cozy.engines.transcript import Segment, Transcript, TranscriptEvent

if TYPE_CHECKING:
    from cozy.engines.config import EnginesConfig
    from cozy.settings import Settings
    from cozy.storage.cache import L2Cache
    from cozy.storage.redis_cache import RedisLink
    from cozy.storage.store import Store

ENGINE_API_VERSION = "v1"


@dataclass(slots=True)
class Health:
    ok: bool
    detail: str = ""
    fix: str = ""


@dataclass(slots=True)
class Route:
    """Where a model name resolved to: the AI engine, its model, and the label users see."""

    engine: AIEngine
    model: str
    label: str  # provider:model, as shown to users
    reason: str = ""  # why this provider answers (the `auto` choice, or asked for by name)


class ModelRouter(Protocol):
    """Resolves `provider:model`, aliases and bare model names (engines/ai/router.py)."""

    async def resolve(self, spec: str | None) -> Route: ...

    def split(self, spec: str | None) -> tuple[str, str]: ...


@dataclass(frozen=True, slots=True)
class EngineContext:
    """Everything a provider may use from the house, built once by the runtime.

    Each field is optional so an engine can be built alone (tests, benches): a provider
    that needs a field it was not given says so with a ConfigError naming the fix.
    `embedder` is a ready embedder (tests, benches); `load_embedder` gets the runtime's
    `embed:` engine on first call (None when none is configured; raises when it is
    configured but broken), so opening cozy never waits for a model to load.
    """

    store: Store | None = None
    cache: L2Cache | None = None
    router: ModelRouter | None = None
    settings: Settings | None = None
    config: EnginesConfig | None = None
    redis: RedisLink | None = None
    embedder: EmbedEngine | None = None
    load_embedder: Callable[[], Awaitable[EmbedEngine | None]] | None = None
    # a personality's knowledge collections (knowledge.search keeps to them)
    collections_of: Callable[[str], Sequence[str]] | None = None
    # offer a built-in tool on the live tools engine (a provider's own tool, e.g.
    # knowledge.search once the index has documents)
    offer_tool: Callable[[ToolSpec, Callable[..., Any]], None] | None = None
    # tell this process's job worker that a job was queued (it runs it soon)
    wake_worker: Callable[[], None] | None = None
    # start loading the embedder when an engine with vectors opens: a long-lived process
    # (chat, TUI, server) answers its first question with vectors. A one-shot command
    # (Runtime.open(engines=False): `cozy knowledge add/stats`) does not: it would wait
    # at exit for a model load it never used (a search there loads it when it needs it)
    warm_embedder: bool = True

    async def get_embedder(self) -> EmbedEngine | None:
        if self.embedder is not None:
            return self.embedder
        return await self.load_embedder() if self.load_embedder is not None else None


class EngineOptions(BaseModel):
    """A provider's options in engines.yaml. Unknown keys are errors: a misspelt option
    is reported (file:line, the allowed keys) instead of silently ignored. The runtime
    validates a section before building the engine; a provider parses its own options
    again with `of()` so it can also be built alone (tests, benches)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def of(cls, options: Self | Mapping[str, Any], where: str = "") -> Self:
        if isinstance(options, cls):  # already checked (a provider built by its engine)
            return options
        try:
            return cls.model_validate(options)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            at = f"{where}.{field}" if where else field
            raise ConfigError(
                f"{at}: {err['msg']}", hint=f"fix `{where or field}` in engines.yaml"
            ) from exc


class OpenOptions(EngineOptions):
    """For a provider that declares no Options model (a third-party one): any key."""

    model_config = ConfigDict(extra="allow", frozen=True)


class BaseEngine(ABC):  # noqa: B024 - the lifecycle hooks are optional on purpose
    """Lifecycle shared by every engine. Options come from engines.yaml."""

    kind: ClassVar[str] = ""
    provider_name: ClassVar[str] = ""
    api_version: ClassVar[str] = ENGINE_API_VERSION
    Options: ClassVar[type[EngineOptions]] = OpenOptions

    def __init__(
        self, options: dict[str, Any] | None = None, ctx: EngineContext | None = None
    ) -> None:
        self.options: dict[str, Any] = dict(options or {})
        self.ctx = ctx if ctx is not None else EngineContext()

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
    # model names of the form `name:tag` (Ollama's `llama3.2:3b`): a prefix that is no
    # provider may then be part of the name; otherwise it is a mistyped provider
    tagged_model_names: ClassVar[bool] = False
    # images in user messages: False refuses them before anything is stored; None
    # (unknown: a server decides per model) sends them and lets the server answer
    supports_images: ClassVar[bool | None] = None
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

    async def accepts_images(self, model: str) -> bool | None:
        """Whether `model` reads images (None: unknown, the server decides)."""
        return self.supports_images


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

    async def embed_tokens(self, tokens: Sequence[Sequence[int]]) -> list[list[float]]:
        """Embed pre-tokenised inputs (ids of this engine's own tokenizer).

        OpenAI's API takes token arrays as input; engines that can use them override
        this, the others refuse with the fix."""
        from cozy.core.errors import UsageError

        raise UsageError(
            f"the '{self.provider_name}' embedding engine takes text, not token ids",
            hint="send `input` as a string or a list of strings",
        )


class VoiceEngine(BaseEngine):
    """Speech in and out. PCM on this interface is 16-bit little-endian mono."""

    kind = "voice"
    output_rate: int = 24_000  # sample rate of what `speak_stream` yields
    # partial transcripts while the user speaks: re-decode the utterance so far after
    # this much new audio (milliseconds); 0: this engine gives none
    partial_interval_ms: float = 0.0

    @abstractmethod
    async def transcribe(self, pcm: bytes, sample_rate: int) -> str: ...

    @abstractmethod
    def speak_stream(
        self, text: AsyncIterator[str], *, voice: str | None = None, speed: float | None = None
    ) -> AsyncIterator[bytes]:
        """PCM16 at `output_rate`; `voice` picks one of the provider's voices, `speed`
        scales the speaking rate (1.0 = normal)."""

    async def diagnose(self) -> list[tuple[str, Health]]:
        """Named checks for `cozy doctor` (active engines, model files, a self-test)."""
        return [("voice", await self.health_check())]

    async def check_voice(self, voice: str | None) -> None:
        """Raise `UsageError` for a voice `speak_stream` cannot use (before streaming)."""

    async def transcribe_detailed(
        self,
        pcm: bytes,
        sample_rate: int,
        *,
        language: str | None = None,
        prompt: str | None = None,
        words: bool = False,
    ) -> Transcript:
        """Timed segments where the provider has them; the default is one segment."""
        text = await self.transcribe(pcm, sample_rate)
        duration = len(pcm) / 2 / sample_rate
        return Transcript(text, duration, language, [Segment(0, 0.0, duration, text)])

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
