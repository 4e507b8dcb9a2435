"""Server VAD for `/v1/realtime`: speech start/stop on the session's 24 kHz PCM16 stream.

The voice engine's streaming `Segmenter` (Silero ONNX, else webrtcvad) runs at
16 kHz, so each append is resampled (soxr) and pushed in a worker thread, never
on the event loop. Times come back in milliseconds of session audio, which is
what `audio_start_ms` / `audio_end_ms` mean in the protocol.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from cozy.engines.voice.audio import STT_RATE, from_pcm16, resample
from cozy.server.realtime_protocol import RATE

if TYPE_CHECKING:
    from cozy.engines.base import VoiceEngine
    from cozy.engines.voice.vad import Segmenter

MIN_SPEECH_MS = 120.0  # a click or a cough shorter than this is not a turn


class TurnDetector:
    def __init__(self, segmenter: Segmenter, offset_ms: float) -> None:
        self.segmenter = segmenter
        self.offset_ms = offset_ms  # session time of the first sample the segmenter saw

    @classmethod
    async def create(
        cls, engine: VoiceEngine, turn_detection: dict[str, Any], offset_ms: float
    ) -> TurnDetector:
        from cozy.engines.capabilities import TranscribesClips
        from cozy.engines.voice.vad import Segmenter, make_vad

        kw = {
            "threshold": float(turn_detection["threshold"]),
            "silence_ms": float(turn_detection["silence_duration_ms"]),
            "min_speech_ms": MIN_SPEECH_MS,
        }
        if isinstance(engine, TranscribesClips):
            segmenter = await engine.new_segmenter(**kw)
        else:  # another voice provider: cozy's own VAD still finds the turns
            segmenter = Segmenter(await asyncio.to_thread(make_vad, None), **kw)
        return cls(segmenter, offset_ms)

    @property
    def in_speech(self) -> bool:
        return self.segmenter.in_speech

    def _push(self, pcm: bytes) -> list[tuple[str, float]]:
        samples = resample(from_pcm16(pcm), RATE, STT_RATE)
        return self.segmenter.push(samples)

    async def push(self, pcm: bytes) -> list[tuple[str, int]]:
        """("start" | "stop", session ms) for each change the audio brings."""
        events = await asyncio.to_thread(self._push, pcm)
        return [
            ("start" if kind == "start" else "stop", int(self.offset_ms + t * 1000))
            for kind, t in events
        ]
