"""What the AI providers share: the chat entry points, the deadlines of a provider
behind a server, and small wire helpers (no SDK imports here)."""

from __future__ import annotations

import asyncio
import random
import sys
from abc import abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import ClassVar, TypeVar

from pydantic import Field

from cozy.core.errors import ModelUnreachableError
from cozy.core.types import ChatResult, GenerationOptions, Message, StreamChunk, ToolCall, ToolSpec
from cozy.engines.base import AIEngine, EngineOptions

T = TypeVar("T")


@dataclass(slots=True)
class Call:
    """One chat request, as `chat` / `chat_stream` received it."""

    messages: Sequence[Message]
    model: str
    tools: Sequence[ToolSpec] | None = None
    options: GenerationOptions | None = None

    @property
    def names(self) -> ToolNames:
        return ToolNames(self.tools)


class Provider(AIEngine):
    """The engine's two chat entry points, once: a provider answers a `Call` whole in
    `_answer`, and in `_stream` as chunks whose last carries the tool calls, finish
    reason and usage. `chat_stream` hands out `_stream`'s generator itself, so a
    consumer's `aclose` reaches the provider's cleanup at once."""

    async def chat(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        tools: Sequence[ToolSpec] | None = None,
        options: GenerationOptions | None = None,
    ) -> ChatResult:
        return await self._answer(Call(messages, model, tools, options))

    def chat_stream(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        tools: Sequence[ToolSpec] | None = None,
        options: GenerationOptions | None = None,
    ) -> AsyncIterator[StreamChunk]:
        return self._stream(Call(messages, model, tools, options))

    @abstractmethod
    async def _answer(self, call: Call) -> ChatResult: ...

    @abstractmethod
    def _stream(self, call: Call) -> AsyncIterator[StreamChunk]: ...


class RemoteOptions(EngineOptions):
    """The deadlines of a provider behind a server (its Options model extends this)."""

    timeout: float = Field(default=60.0, gt=0)
    idle_timeout: float | None = Field(default=None, gt=0)  # default: min(timeout, 60)
    connect_timeout: float | None = Field(default=None, gt=0)  # default: min(timeout, 10)
    max_retries: int = Field(default=2, ge=0)


class RemoteProvider(Provider):
    """A provider behind a server: `timeout` bounds a whole call until the answer starts
    (connect, every retry, the server's thinking), so a silent server is reported once,
    never once per retry; a stream then fails when nothing arrives for `idle_timeout` s."""

    where: str  # "Ollama at http://…": how messages name the server
    silent_hint: ClassVar[str] = "check the server"

    def _deadlines(self, o: RemoteOptions) -> None:
        self.timeout = o.timeout
        self.idle_timeout = o.idle_timeout or min(self.timeout, 60.0)
        self.connect_timeout = o.connect_timeout or min(self.timeout, 10.0)
        self.max_retries = o.max_retries

    def _silent(self, first: bool = True) -> ModelUnreachableError:
        if first:
            retries = f", {self.max_retries} retries included" if self.max_retries else ""
            return ModelUnreachableError(
                f"{self.where} did not answer within {self.timeout:g}s (ai.timeout{retries})",
                hint=f"{self.silent_hint}, or raise `ai.timeout` in engines.yaml",
            )
        return ModelUnreachableError(
            f"{self.where} stopped sending the answer (nothing for {self.idle_timeout:g}s); "
            "the partial answer was kept",
            hint="check the server, or raise `ai.idle_timeout` in engines.yaml",
        )

    async def _within(self, call: Awaitable[T], seconds: float | None = None) -> T:
        return await within(seconds or self.timeout, call, self._silent)

    def _paced(self, source: AsyncIterator[T]) -> AsyncGenerator[T, None]:
        return paced(
            source, first_within=self.timeout, idle=self.idle_timeout, stalled=self._silent
        )


def import_httpx() -> ModuleType:
    """httpx, imported without its command-line module (`httpx._main`: rich, pygments and
    click, ~70% of httpx's import time, for the `httpx` command cozy never runs)."""
    if "httpx" not in sys.modules and "httpx._main" not in sys.modules:
        sys.modules["httpx._main"] = None  # type: ignore[assignment]  # "not installed"
        try:
            import httpx
        finally:
            del sys.modules["httpx._main"]  # an explicit import of it still works
        return httpx
    import httpx

    return httpx


def wire(name: str) -> str:
    """The tool name as the model sees it (OpenAI allows no dots)."""
    return name.replace(".", "__")


class ToolNames:
    """Maps wire names the model returns back to cozy tool names."""

    def __init__(self, tools: Sequence[ToolSpec] | None) -> None:
        self._by_wire = {t.wire_name: t.name for t in tools or ()}

    def name(self, wire_name: str) -> str:
        return self._by_wire.get(wire_name, wire_name)


def wire_messages(messages: Sequence[Message]) -> list[Message]:
    """Copies of `messages` whose tool names are wire names."""
    out: list[Message] = []
    for m in messages:
        calls = [ToolCall(c.id, wire(c.name), c.arguments, c.index) for c in m.tool_calls]
        name = wire(m.name) if m.name else None
        out.append(Message(m.role, m.content, calls, m.tool_call_id, name, list(m.images)))
    return out


def backoff(attempt: int, base: float, cap: float = 8.0) -> float:
    """Exponential backoff with up to 25% jitter; attempt 0 is the first retry."""
    delay: float = min(cap, base * (2.0**attempt))
    return delay * (1 - 0.25 * random.random())


async def paced(
    source: AsyncIterator[T],
    *,
    first_within: float,
    idle: float,
    stalled: Callable[[bool], BaseException],
) -> AsyncGenerator[T, None]:
    """`source`, bounded: its first item within `first_within` s of this call (connect,
    retries and the server's thinking all count), then at most `idle` s between items.

    `stalled(first)` builds the error raised on either deadline. The timers wrap only
    the wait for the next item, never the consumer's work between two items.
    """
    loop = asyncio.get_running_loop()
    first_by = loop.time() + first_within
    first = True
    try:
        while True:
            try:
                if first:
                    async with asyncio.timeout_at(first_by):
                        item = await anext(source)
                else:
                    async with asyncio.timeout(idle):
                        item = await anext(source)
            except StopAsyncIteration:
                return
            except TimeoutError as exc:
                raise stalled(first) from exc
            first = False
            yield item
    finally:
        close = getattr(source, "aclose", None)
        if close is not None:
            await close()


async def within(seconds: float, call: Awaitable[T], error: Callable[[], BaseException]) -> T:
    """`call` (retries included) bounded by one deadline."""
    try:
        async with asyncio.timeout(seconds):
            return await call
    except TimeoutError as exc:
        raise error() from exc
