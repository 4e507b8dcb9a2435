"""The transcription of one committed input clip on a `/v1/realtime` connection.

It runs as a task (the socket keeps reading meanwhile); its text becomes the user
item's transcript and the prompt of the next response. A failed recognition is sent
as `...input_audio_transcription.failed` and answers "" (no speech), and a completed
one is announced only when the client asked for transcriptions.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from cozy.core.errors import CozyError
from cozy.server.realtime_protocol import RATE, SessionConfig

if TYPE_CHECKING:
    from cozy.engines.base import VoiceEngine

log = logging.getLogger("cozy.server.realtime")


async def transcribe_clip(
    engine: VoiceEngine | None,
    item: dict[str, Any],
    pcm: bytes,
    config: SessionConfig,
    language: Callable[[], str | None],
    send: Callable[[dict[str, Any]], Awaitable[None]],
) -> str:
    """The clip's text (also set on `item`). `config` is the session's own, read as the
    task runs: a session.update that lands before then applies to this clip."""
    from cozy.engines.voice.audio import decode_pcm16

    if engine is None:
        return ""  # no voice engine: the item stays without a transcript
    started = time.perf_counter()
    try:
        # the session's transcription settings steer the recogniser (language, prompt)
        wanted = config.transcription or {}
        result = await engine.transcribe_detailed(
            pcm,
            RATE,
            language=language(),
            prompt=str(wanted.get("prompt") or "") or None,
        )
        text = result.text.strip()
    except CozyError as exc:
        await send(
            {
                "type": "conversation.item.input_audio_transcription.failed",
                "item_id": item["id"],
                "content_index": 0,
                "error": exc.to_dict(),
            }
        )
        return ""
    item["content"][0]["transcript"] = text
    if config.transcription is not None:
        seconds = decode_pcm16(pcm, RATE).seconds
        await send(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": item["id"],
                "content_index": 0,
                "transcript": text,
                "usage": {"type": "duration", "seconds": round(seconds, 3)},
            }
        )
    log.debug("transcribed", extra={"stt_ms": (time.perf_counter() - started) * 1000})
    return text
