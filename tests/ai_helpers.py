"""What the AI provider tests share: a first message and a stream reader."""

from __future__ import annotations

from collections.abc import AsyncIterator

from cozy.core.types import Message, StreamChunk

HI = [Message("user", "hello there")]


async def collect(it: AsyncIterator[StreamChunk]) -> tuple[str, StreamChunk]:
    """All the text of a stream, and its last chunk."""
    text, last = "", StreamChunk()
    async for chunk in it:
        text += chunk.delta
        last = chunk
    return text, last
