"""Helpers shared by the AI providers (no SDK imports here)."""

from __future__ import annotations

import asyncio
import random
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from types import ModuleType
from typing import TypeVar

from cozy.core.types import Message, ToolCall, ToolSpec

T = TypeVar("T")


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
