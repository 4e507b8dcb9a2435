"""Conversation items of a `/v1/realtime` connection: create, delete, retrieve, truncate.

A mixin of `RealtimeSession`. User items become pending input for the next
response (text directly, audio through a transcription task); system items add
to the instructions; assistant items are kept for the client's view. The turns
themselves are stored by the orchestrator in the connection's cozy session.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cozy.server.realtime_protocol import (
    ProtocolError,
    RealtimeLimits,
    decode_audio,
    new_id,
    user_text,
)

if TYPE_CHECKING:
    from cozy.runtime import Runtime

Send = Callable[[dict[str, Any]], Awaitable[None]]
ROLES = ("user", "system", "assistant")


@dataclass(slots=True)
class PendingInput:
    item_id: str
    text: str | None = None
    task: asyncio.Task[str] | None = None

    async def result(self) -> str:
        if self.task is not None:
            return await asyncio.shield(self.task)  # a cancelled response keeps the STT running
        return self.text or ""


class ConversationItems:
    runtime: Runtime
    limits: RealtimeLimits
    send: Send
    items: dict[str, dict[str, Any]]
    pending: list[PendingInput]
    system_items: list[str]
    message_ids: dict[str, str]

    def _transcribe(self, item: dict[str, Any], pcm: bytes) -> asyncio.Task[str]:
        raise NotImplementedError

    async def on_conversation_item_create(self, event: dict[str, Any]) -> None:
        item = event.get("item")
        if not isinstance(item, dict):
            raise ProtocolError("`item` must be an object", code="invalid_value", param="item")
        if item.get("type", "message") != "message":
            raise ProtocolError(
                f"item type '{item.get('type')}' is not supported",
                code="invalid_value",
                param="item.type",
                hint="send message items (role user, system or assistant)",
            )
        role = item.get("role")
        content = item.get("content")
        if role not in ("user", "system", "assistant") or not isinstance(content, list):
            raise ProtocolError(
                "a message item needs `role` (user, system or assistant) and a `content` list",
                code="invalid_value",
                param="item.role"
                if role not in ("user", "system", "assistant")
                else "item.content",
            )
        audio = b""
        for i, part in enumerate(content):
            if isinstance(part, dict) and part.get("type") == "input_audio" and part.get("audio"):
                audio += decode_audio(
                    part["audio"],
                    limit=self.limits.max_append_bytes,
                    param=f"item.content[{i}].audio",
                )
        stored = {
            **item,
            "id": item.get("id") or new_id("item"),
            "object": "realtime.item",
            "type": "message",
            "status": "completed",
        }
        stored["content"] = [
            {k: v for k, v in p.items() if k != "audio"} for p in content if isinstance(p, dict)
        ]
        previous = event.get("previous_item_id") or self._last_item_id()
        await self._add_item(stored, previous)
        if role == "system":
            self.system_items.append(user_text(stored))
        elif role == "user":
            text = user_text(stored)
            if audio:
                self.pending.append(
                    PendingInput(stored["id"], task=self._transcribe(stored, audio))
                )
            if text:
                self.pending.append(PendingInput(stored["id"], text=text))

    async def _add_item(self, item: dict[str, Any], previous: str | None) -> None:
        self.items[item["id"]] = item
        while len(self.items) > self.limits.max_items:
            self.items.pop(next(iter(self.items)))
        await self.send(
            {"type": "conversation.item.added", "previous_item_id": previous, "item": item}
        )
        await self.send(
            {"type": "conversation.item.done", "previous_item_id": previous, "item": item}
        )

    def _last_item_id(self) -> str | None:
        return next(reversed(self.items), None)

    def _item(self, event: dict[str, Any]) -> dict[str, Any]:
        item = self.items.get(str(event.get("item_id")))
        if item is None:
            raise ProtocolError(
                f"no item '{event.get('item_id')}' in this conversation",
                code="item_not_found",
                param="item_id",
            )
        return item

    async def on_conversation_item_delete(self, event: dict[str, Any]) -> None:
        item = self._item(event)
        del self.items[item["id"]]
        self.pending = [p for p in self.pending if p.item_id != item["id"]]
        await self.send({"type": "conversation.item.deleted", "item_id": item["id"]})

    async def on_conversation_item_retrieve(self, event: dict[str, Any]) -> None:
        await self.send({"type": "conversation.item.retrieved", "item": self._item(event)})

    async def on_conversation_item_truncate(self, event: dict[str, Any]) -> None:
        item = self._item(event)
        if item.get("role") != "assistant":
            raise ProtocolError(
                "only assistant audio can be truncated", code="invalid_value", param="item_id"
            )
        end_ms = event.get("audio_end_ms")
        if not isinstance(end_ms, int) or end_ms < 0:
            raise ProtocolError(
                "`audio_end_ms` must be a non-negative integer",
                code="invalid_value",
                param="audio_end_ms",
            )
        message_id = self.message_ids.get(item["id"])
        if message_id:  # the user heard only part of it: keep it, marked as interrupted
            await self.runtime.store.update_message(message_id, status="interrupted")
        await self.send(
            {
                "type": "conversation.item.truncated",
                "item_id": item["id"],
                "content_index": event.get("content_index", 0),
                "audio_end_ms": end_ms,
            }
        )

    async def on_output_audio_buffer_clear(self, event: dict[str, Any]) -> None:
        raise ProtocolError(
            "output_audio_buffer.clear is for WebRTC connections",
            code="invalid_value",
            param="type",
            hint="over a WebSocket, send response.cancel to stop the answer",
        )
