"""Capability protocols: what a face or the runtime may need of an engine beyond its
kind's ABC (engines/base.py). They test `isinstance(engine, Capability)`
(runtime_checkable: method names only), never a provider class, so a third-party
provider gets the same treatment by implementing them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from cozy.core.types import KnowledgeHit, MemoryHit, ToolSpec

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection


class MemoryRecord(Protocol):
    """One remembered item as a face shows it."""

    id: str
    kind: str
    text: str
    status: str
    updated_at: float | None

    def to_dict(self) -> dict[str, Any]: ...


@runtime_checkable
class ManagesMemories(Protocol):
    """A memory engine the user can manage: `cozy memory`, the TUI browser."""

    restorable: ClassVar[bool]  # whether `forget` can be undone with `restore`

    async def list_memories(
        self, user_id: str, *, kinds: Sequence[str] = ("fact",), include_removed: bool = False
    ) -> Sequence[MemoryRecord]: ...

    async def find_memories(
        self, query: str, *, user_id: str, limit: int, min_similarity: float | None = None
    ) -> list[MemoryHit]:
        """A search no answer waits on: the embedder may take its time to load."""
        ...

    async def remember(self, user_id: str, text: str) -> tuple[str, bool]: ...

    async def edit_memory(self, user_id: str, memory_id: str, text: str) -> MemoryRecord: ...

    async def forget(self, user_id: str, memory_id: str) -> MemoryRecord: ...

    async def restore(self, user_id: str, memory_id: str) -> MemoryRecord: ...

    async def history(self, user_id: str, memory_id: str) -> list[dict[str, Any]]: ...

    async def export(self, user_id: str) -> dict[str, Any]: ...


@runtime_checkable
class ManagesProfileSlots(Protocol):
    """A profile engine whose topic.slot entries the user can read and change."""

    async def slots(
        self, user_id: str, *, include_removed: bool = False
    ) -> list[dict[str, Any]]: ...

    async def set_slot(self, user_id: str, key: str, value: str) -> None: ...

    async def remove_slot(self, user_id: str, key: str) -> None: ...

    async def history(self, user_id: str, key: str | None = None) -> list[dict[str, Any]]: ...


@runtime_checkable
class IngestsPaths(Protocol):
    """A knowledge engine that reads files on this machine in a durable background job."""

    async def queue_ingest(
        self,
        paths: Sequence[Any],
        *,
        user_id: str,
        collection: str = "default",
        embed: bool = True,
    ) -> str: ...


@runtime_checkable
class ManagesDocuments(IngestsPaths, Protocol):
    """A knowledge engine whose documents the user manages (`cozy knowledge`)."""

    async def add_paths(self, paths: Sequence[Any], **kw: Any) -> Any: ...

    async def search(self, query: str, **kw: Any) -> list[KnowledgeHit]: ...

    async def list_documents(self, **kw: Any) -> list[Any]: ...

    async def stats(self, *, user_id: str) -> dict[str, Any]: ...

    async def remove(self, ref: str, **kw: Any) -> list[Any]: ...


@runtime_checkable
class EmbedsLater(Protocol):
    """A knowledge engine whose documents are searchable before their vectors exist: it
    embeds the chunks still without one (`cozy knowledge embed`, a background job)."""

    async def embed_pending(
        self, user_id: str, collection: str | None = None, **kw: Any
    ) -> int: ...


@runtime_checkable
class TranscribesClips(Protocol):
    """A voice engine that works on whole clips (engines/voice/audio.py `Clip`) and
    finds the speech in them: push-to-talk, the audio API, server-side turn detection."""

    output_rate: int
    timings: dict[str, float]  # the last turn's stt_s, first_audio_s…

    async def transcribe_clip(self, clip: Any, *, language: str | None = None) -> str: ...

    async def speech_spans(self, clip: Any, **kw: Any) -> list[Any]: ...

    async def new_segmenter(self, **kw: Any) -> Any: ...

    def new_vad(self) -> Any:
        """A VAD as configured, with its own stream state (blocking)."""

    def speak_stream(self, text: AsyncIterator[str]) -> AsyncIterator[bytes]: ...


@runtime_checkable
class ProvidesBuiltinTools(Protocol):
    """A tools engine that takes in-process tools (memory.*, knowledge.search)."""

    def register_builtin(self, spec: ToolSpec, fn: Callable[..., Any]) -> None: ...


@runtime_checkable
class ReportsServers(Protocol):
    """A tools engine that runs tool servers and reports each one's state
    (`cozy tools servers`): name, transport, state, pid, tool_count, last_error…"""

    async def servers_status(self) -> list[dict[str, Any]]: ...


@runtime_checkable
class ServesPrompts(Protocol):
    """A tools engine whose servers offer MCP prompts (`cozy tools prompts`,
    `cozy run --prompt SERVER.NAME`). Returns the prompts and per-server problems."""

    async def list_prompts(self, server: str | None = None) -> tuple[list[Any], list[str]]: ...

    async def get_prompt(
        self, qualified: str, arguments: dict[str, str]
    ) -> list[dict[str, str]]: ...


@runtime_checkable
class ServesResources(Protocol):
    """A tools engine whose servers offer MCP resources (`cozy tools resources`,
    `cozy run --resource SERVER:URI`)."""

    async def list_resources(self, server: str | None = None) -> tuple[list[Any], list[str]]: ...

    async def read_resource(self, server: str, uri: str) -> Any: ...


@runtime_checkable
class KeepsServerLogs(Protocol):
    """A tools engine that keeps what its servers logged (MCP notifications/message),
    bounded, for `cozy tools logs`; reading never starts a server."""

    def server_logs(
        self, server: str | None = None, *, limit: int = 50, level: str = "debug"
    ) -> list[dict[str, Any]]: ...


@runtime_checkable
class LogsInToServers(Protocol):
    """A tools engine whose HTTP servers may use OAuth: `cozy tools login SERVER` runs
    the browser step (`show_url` shows the authorization URL to the person)."""

    async def login(
        self, server: str, show_url: Callable[[str], Awaitable[None]]
    ) -> dict[str, Any]: ...


class Admission(Protocol):
    """Places an AI engine holds for one request (see `AdmitsRequests`)."""

    def release(self) -> None: ...


@runtime_checkable
class AdmitsRequests(Protocol):
    """An AI engine that runs requests on a bounded queue (the embedded model) and can
    hold places in it before a face commits to an answer: a streaming HTTP response sends
    its 200 before the model is asked, so the server holds the places first and answers
    503 + Retry-After when there are none. `admit(n)` raises ModelBusy, or holds `n`
    places that the next generations of this task (and of the tasks it starts afterwards)
    take; `release()` gives back the ones not taken."""

    def admit(self, n: int = 1) -> Admission: ...


@dataclass(frozen=True, slots=True)
class SavedTurn:
    """What a complete turn saved (its answer finished, no tool calls left open)."""

    user_id: str  # the session's owner
    session_id: str
    personality_id: str
    message_ids: tuple[str, str]  # the turn's first message (the user's), the answer


class TurnHook:
    """Told about every complete turn the orchestrator saves, in two parts; either may
    be left as is. The turn writer (core/persist.py) holds the list."""

    async def in_transaction(self, conn: AsyncConnection, saved: SavedTurn) -> None:
        """Inside the transaction that saves the answer: jobs queued here commit or roll
        back with the messages, so a crash can never keep one without the other."""

    async def committed(self, saved: SavedTurn) -> None:
        """Once that transaction committed (e.g. wake the job worker)."""


class BackgroundJobs(TurnHook):
    """An engine's durable work: its turn hook (queueing jobs) and the handlers that
    run them."""

    def handlers(self) -> Mapping[str, Callable[..., Awaitable[None]]]:
        raise NotImplementedError


@runtime_checkable
class HasBackgroundJobs(Protocol):
    def background(self) -> BackgroundJobs: ...
