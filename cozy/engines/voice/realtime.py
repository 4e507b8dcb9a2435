"""A realtime transcriber: PCM chunks in, utterance events out (VAD-segmented).

Used by the `/v1/audio/stt` WebSocket and hands-free voice: each chunk goes to a
VAD segmenter and, while speech lasts, to a streaming STT session. Events:
`speech_started`, `partial` (text so far), `final` (one utterance, after the
configured trailing silence) and, at `finish()`, a last `final` if speech was open.

Partials: pocketsphinx gives them as it decodes. Whisper decodes whole windows, so
partials come from re-decoding the utterance so far every `partial_interval_ms` of
new audio, in a worker thread, one decode at a time (the next chunks keep flowing;
a partial that is still running when the utterance ends is dropped, the final
supersedes it). The final is one decode of the whole utterance, as without partials.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from cozy.engines.voice.audio import STT_RATE, check_rate, from_pcm16, resample

if TYPE_CHECKING:
    from cozy.engines.voice.audio import Samples
    from cozy.engines.voice.stt import STT, STTStream
    from cozy.engines.voice.vad import Segmenter

PREROLL_S = 0.3  # audio kept from before the VAD fired, so first phonemes are not lost
PARTIAL_MAX_S = 30.0  # Whisper's window: longer utterances get no more partials


@dataclass(slots=True)
class RealtimeEvent:
    type: str  # speech_started | partial | final
    text: str = ""
    time: float = 0.0  # seconds of audio received when the event happened

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "text": self.text, "time": round(self.time, 3)}


class RealtimeTranscriber:
    def __init__(self, stt: STT, new_segmenter: Callable[..., Awaitable[Segmenter]], *,
                 default_partial_ms: float = 0.0, sample_rate: int = STT_RATE, vad: bool = True,
                 silence_ms: float | None = None,
                 partial_interval_ms: float | None = None) -> None:  # fmt: skip
        self.stt = stt
        self.new_segmenter = new_segmenter  # LocalVoice.new_segmenter: a VAD per stream
        self.rate = check_rate(int(sample_rate))
        self.use_vad = vad
        self.silence_ms = silence_ms
        interval = default_partial_ms if partial_interval_ms is None else partial_interval_ms
        self.partial_every = int(max(0.0, float(interval)) / 1000 * STT_RATE)  # 0: no partials
        self._seg: Segmenter | None = None
        self._session: STTStream | None = None
        self._preroll = np.zeros(0, dtype=np.float32)
        self._carry = b""
        self._received = 0.0
        self._heard: list[Samples] = []  # the open utterance, for re-decoded partials
        self._heard_n = 0
        self._partial: asyncio.Task[str] | None = None
        self._partial_n = 0  # utterance samples the last partial decode started from
        self._last_partial = ""

    async def _segmenter(self) -> Segmenter:
        if self._seg is None:
            kw = {} if self.silence_ms is None else {"silence_ms": float(self.silence_ms)}
            self._seg = await self.new_segmenter(**kw)
        return self._seg

    async def _open(self) -> STTStream:
        self._session = await asyncio.to_thread(self.stt.stream)
        self._heard, self._heard_n, self._partial_n, self._last_partial = [], 0, 0, ""
        return self._session

    async def _accept(self, session: STTStream, samples: Samples) -> list[RealtimeEvent]:
        partial = await asyncio.to_thread(session.accept, samples)
        if partial:
            return [RealtimeEvent("partial", partial, self._received)]
        stt = self.stt
        if stt.streams_partials or not self.partial_every:
            return []
        self._heard.append(samples)
        self._heard_n += len(samples)
        due = self._heard_n - self._partial_n >= self.partial_every
        if due and self._partial is None and self._heard_n <= PARTIAL_MAX_S * STT_RATE:
            self._partial_n = self._heard_n
            audio = np.concatenate(self._heard)
            self._partial = asyncio.create_task(asyncio.to_thread(stt.transcribe, audio))
        return []

    def _partial_ready(self) -> list[RealtimeEvent]:
        task = self._partial
        if task is None or not task.done():
            return []
        self._partial = None
        if task.cancelled() or task.exception() is not None:
            return []  # the final decode reports a recogniser failure
        text = task.result().strip()
        if not text or text == self._last_partial:
            return []
        self._last_partial = text
        return [RealtimeEvent("partial", text, self._received)]

    @property
    def partial_pending(self) -> asyncio.Task[str] | None:
        """The partial decode in flight (await it, then `poll()`), if any."""
        return self._partial

    def poll(self) -> list[RealtimeEvent]:
        """A partial transcript whose decode has finished since the last chunk."""
        return self._partial_ready()

    async def _drop_partial(self) -> None:
        task, self._partial = self._partial, None
        if task is not None:  # a decode thread cannot be stopped: wait, then discard
            with contextlib.suppress(Exception):
                await task

    async def feed(self, pcm: bytes) -> list[RealtimeEvent]:
        data = self._carry + pcm
        cut = len(data) - (len(data) % 2)
        self._carry = data[cut:]
        if not cut:
            return []
        raw = from_pcm16(data[:cut])
        self._received += len(raw) / self.rate
        samples = await asyncio.to_thread(resample, raw, self.rate, STT_RATE)
        events = self._partial_ready()
        if not self.use_vad:
            session = self._session or await self._open()
            return events + await self._accept(session, samples)
        seg = await self._segmenter()
        for kind, _t in await asyncio.to_thread(seg.push, samples):
            if kind == "start" and self._session is None:
                events.append(RealtimeEvent("speech_started", "", self._received))
                session = await self._open()
                events += await self._accept(session, self._preroll)
            elif kind == "end" and self._session is not None:
                events.append(await self._final())
        if self._session is not None:
            events += await self._accept(self._session, samples)
        keep = int(PREROLL_S * STT_RATE)
        self._preroll = np.concatenate([self._preroll, samples])[-keep:]
        return events

    async def _final(self) -> RealtimeEvent:
        assert self._session is not None
        session, self._session = self._session, None
        await self._drop_partial()
        text = await asyncio.to_thread(session.finish)
        return RealtimeEvent("final", text, self._received)

    async def finish(self) -> list[RealtimeEvent]:
        """End of input: flush an utterance still open."""
        if self._session is None:
            return []
        return [await self._final()]

    async def close(self) -> None:
        await self._drop_partial()
        if self._session is not None:
            session, self._session = self._session, None
            await asyncio.to_thread(session.close)
