"""A realtime transcriber: PCM chunks in, utterance events out (VAD-segmented).

Used by the `/v1/audio/stt` WebSocket and hands-free voice: each chunk goes to a
VAD segmenter and, while speech lasts, to a streaming STT session. Events:
`speech_started`, `partial` (text so far), `final` (one utterance, after the
configured trailing silence) and, at `finish()`, a last `final` if speech was open.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from cozy.engines.voice.audio import STT_RATE, check_rate, from_pcm16, resample

if TYPE_CHECKING:
    from cozy.engines.voice.stt import STT, STTStream
    from cozy.engines.voice.vad import Segmenter

PREROLL_S = 0.3  # audio kept from before the VAD fired, so first phonemes are not lost


@dataclass(slots=True)
class RealtimeEvent:
    type: str  # speech_started | partial | final
    text: str = ""
    time: float = 0.0  # seconds of audio received when the event happened

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "text": self.text, "time": round(self.time, 3)}


class RealtimeTranscriber:
    def __init__(self, stt: STT, new_segmenter: Callable[..., Awaitable[Segmenter]], *,
                 sample_rate: int = STT_RATE, vad: bool = True,
                 silence_ms: float | None = None) -> None:  # fmt: skip
        self.stt = stt
        self.new_segmenter = new_segmenter  # LocalVoice.new_segmenter: a VAD per stream
        self.rate = check_rate(int(sample_rate))
        self.use_vad = vad
        self.silence_ms = silence_ms
        self._seg: Segmenter | None = None
        self._session: STTStream | None = None
        self._preroll = np.zeros(0, dtype=np.float32)
        self._carry = b""
        self._received = 0.0

    async def _segmenter(self) -> Segmenter:
        if self._seg is None:
            kw = {} if self.silence_ms is None else {"silence_ms": float(self.silence_ms)}
            self._seg = await self.new_segmenter(**kw)
        return self._seg

    async def _open(self) -> STTStream:
        self._session = await asyncio.to_thread(self.stt.stream)
        return self._session

    async def feed(self, pcm: bytes) -> list[RealtimeEvent]:
        data = self._carry + pcm
        cut = len(data) - (len(data) % 2)
        self._carry = data[cut:]
        if not cut:
            return []
        raw = from_pcm16(data[:cut])
        self._received += len(raw) / self.rate
        samples = await asyncio.to_thread(resample, raw, self.rate, STT_RATE)
        events: list[RealtimeEvent] = []
        if not self.use_vad:
            session = self._session or await self._open()
            partial = await asyncio.to_thread(session.accept, samples)
            if partial:
                events.append(RealtimeEvent("partial", partial, self._received))
            return events
        seg = await self._segmenter()
        for kind, _t in await asyncio.to_thread(seg.push, samples):
            if kind == "start" and self._session is None:
                events.append(RealtimeEvent("speech_started", "", self._received))
                session = await self._open()
                await asyncio.to_thread(session.accept, self._preroll)
            elif kind == "end" and self._session is not None:
                events.append(await self._final())
        if self._session is not None:
            partial = await asyncio.to_thread(self._session.accept, samples)
            if partial:
                events.append(RealtimeEvent("partial", partial, self._received))
        keep = int(PREROLL_S * STT_RATE)
        self._preroll = np.concatenate([self._preroll, samples])[-keep:]
        return events

    async def _final(self) -> RealtimeEvent:
        assert self._session is not None
        session, self._session = self._session, None
        text = await asyncio.to_thread(session.finish)
        return RealtimeEvent("final", text, self._received)

    async def finish(self) -> list[RealtimeEvent]:
        """End of input: flush an utterance still open."""
        if self._session is None:
            return []
        return [await self._final()]

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await asyncio.to_thread(session.close)
