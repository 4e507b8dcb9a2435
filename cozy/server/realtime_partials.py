"""Partial input transcripts for `/v1/realtime` while the user is still speaking.

With server VAD on and transcription enabled, the audio of the open turn is re-decoded
every `partial_interval_ms` of new speech (the voice engine's option; Whisper decodes
whole windows, so this is how it streams), one decode at a time in a background task,
so reading the socket and barge-in never wait for it. Each result becomes a
`conversation.item.input_audio_transcription.delta` for the turn's item: only the
text that extends what was already sent (deltas append; a revision of earlier words
waits for the `completed` transcript, which is the authoritative one). A commit or
clear stops it: no delta for an item follows its `completed` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from cozy.core.errors import CozyError
from cozy.server.realtime_protocol import BYTES_PER_MS, RATE

if TYPE_CHECKING:
    from cozy.engines.base import VoiceEngine

log = logging.getLogger("cozy.server.realtime")
MAX_PARTIAL_MS = 30_000  # Whisper's window: a longer turn gets no more partials


class PartialTranscripts:
    def __init__(
        self,
        engine: VoiceEngine | None,
        send: Callable[[dict[str, Any]], Awaitable[None]],
        tasks: set[asyncio.Task[Any]],
    ) -> None:
        self.engine, self.send, self.tasks = engine, send, tasks
        self.item_id: str | None = None
        self.sent = ""  # the deltas sent so far for item_id, joined
        self.decoded_bytes = 0  # buffer size the last decode started from
        self.task: asyncio.Task[None] | None = None

    def stop(self) -> None:
        """The turn is committed or cleared: later results are dropped."""
        self.item_id = None

    def maybe_decode(
        self,
        item_id: str,
        buffer: bytearray,
        transcription: dict[str, Any] | None,
        language: str | None,
    ) -> None:
        """Called after each append while the turn's speech lasts."""
        interval = self.engine.partial_interval_ms if self.engine is not None else 0.0
        if not interval or transcription is None:
            return
        if item_id != self.item_id:  # a new turn
            self.item_id, self.sent, self.decoded_bytes = item_id, "", 0
        if self.task is not None and not self.task.done():
            return  # one decode at a time: the next starts from the grown buffer
        size = len(buffer)
        if size - self.decoded_bytes < interval * BYTES_PER_MS:
            return
        if size > MAX_PARTIAL_MS * BYTES_PER_MS:
            return
        self.decoded_bytes = size
        self.task = asyncio.create_task(
            self._decode(item_id, bytes(buffer), transcription, language)
        )
        self.tasks.add(self.task)
        self.task.add_done_callback(self.tasks.discard)

    async def _decode(
        self, item_id: str, pcm: bytes, wanted: dict[str, Any], language: str | None
    ) -> None:
        if self.engine is None:
            return
        try:
            result = await self.engine.transcribe_detailed(
                pcm,
                RATE,
                language=language,
                prompt=str(wanted.get("prompt") or "") or None,
            )
        except CozyError as exc:  # the turn's own transcription reports failures
            log.debug("partial transcript failed", extra={"error": exc.message})
            return
        text = " ".join(result.text.split())
        if self.item_id != item_id or not text.startswith(self.sent) or text == self.sent:
            return
        delta, self.sent = text[len(self.sent) :], text
        with contextlib.suppress(Exception):
            await self.send(
                {
                    "type": "conversation.item.input_audio_transcription.delta",
                    "item_id": item_id,
                    "content_index": 0,
                    "delta": delta,
                }
            )
