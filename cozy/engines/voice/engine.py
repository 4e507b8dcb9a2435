"""The `voice.local` engine: STT + TTS + VAD providers composed from engines.yaml.

    voice:
      provider: local
      stt: {provider: faster-whisper, model: base}   # pocketsphinx | openai
      tts: {provider: piper}                         # espeak | openai
      vad: {provider: auto}                          # silero | webrtc
      output_rate: 24000

Each part falls back to the light offline one (pocketsphinx, espeak-ng) when the
default cannot load; `health_check` and `cozy doctor` say so and name the fix.

Blocking provider work runs in threads (`asyncio.to_thread`), never on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

from cozy.core.errors import EngineError
from cozy.engines.base import EngineContext, Health, VoiceEngine
from cozy.engines.transcript import Transcript, TranscriptEvent
from cozy.engines.voice.audio import (
    STT_RATE,
    Clip,
    check_rate,
    decode_pcm16,
    from_pcm16,
    is_silent,
    resample,
)
from cozy.engines.voice.options import VoiceOptions
from cozy.engines.voice.providers import make_stt, make_tts
from cozy.engines.voice.sentences import first_clause, sentences
from cozy.engines.voice.stt import STT
from cozy.engines.voice.tts import TTS
from cozy.engines.voice.vad import VAD, Segmenter, Span, make_vad, speech_spans


class LocalVoice(VoiceEngine):
    Options = VoiceOptions

    provider_name = "local"

    def __init__(
        self, options: dict[str, Any] | None = None, ctx: EngineContext | None = None
    ) -> None:
        super().__init__(options, ctx)
        self.opts = VoiceOptions.of(self.options, "voice")
        self.output_rate = check_rate(self.opts.output_rate)
        self.partial_interval_ms = self.opts.partial_interval_ms
        self.stt: STT | None = None
        self.tts: TTS | None = None
        self._init_lock = asyncio.Lock()
        self.timings: dict[str, float] = {}

    async def initialize(self) -> None:
        # One load however many first requests arrive together (each would otherwise
        # load its own model, and the others see a half-built engine).
        async with self._init_lock:
            if self.stt is None or self.tts is None:
                stt, tts = await asyncio.gather(
                    asyncio.to_thread(make_stt, self.opts.stt),
                    asyncio.to_thread(make_tts, self.opts.tts),
                )
                self.stt, self.tts = stt, tts

    def _ready(self) -> tuple[STT, TTS]:
        if self.stt is None or self.tts is None:
            raise EngineError("the voice engine is not initialised", hint="await initialize()")
        return self.stt, self.tts

    async def health_check(self) -> Health:
        try:
            await self.initialize()
        except EngineError as exc:
            return Health(ok=False, detail=exc.message, fix=exc.hint or "")
        stt, tts = self._ready()
        reasons = [r for r in (stt.fallback_reason, tts.fallback_reason) if r]
        detail = f"stt={stt.name} tts={tts.name}"
        if reasons:
            return Health(ok=False, detail=f"{detail} (fallback: {'; '.join(reasons)})",
                          fix="./install.sh --extras voice")  # fmt: skip
        return Health(ok=True, detail=detail)

    async def diagnose(self) -> list[tuple[str, Health]]:
        from cozy.engines.voice.diagnose import diagnose

        return await diagnose(self)

    async def close(self) -> None:
        for part in (self.stt, self.tts):
            if part is not None:
                with contextlib.suppress(Exception):
                    part.close()
        self.stt = self.tts = None

    # --- VAD ------------------------------------------------------------------
    def new_vad(self) -> VAD:
        """A VAD as configured, with its own stream state (blocking: it may load a model)."""
        return make_vad(self.opts.vad)

    async def new_segmenter(self, **kw: Any) -> Segmenter:
        """A fresh streaming segmenter on its own VAD instance (VAD state is per stream)."""
        vad = await asyncio.to_thread(self.new_vad)
        defaults = {"silence_ms": self.opts.silence_ms}
        return Segmenter(vad, **{**defaults, **kw})

    async def speech_spans(self, clip: Clip, **kw: Any) -> list[Span]:
        samples = clip.at(STT_RATE).samples
        vad = await asyncio.to_thread(self.new_vad)
        return await asyncio.to_thread(speech_spans, vad, samples, **kw)

    # --- speech to text ---------------------------------------------------------
    async def transcribe_clip(self, clip: Clip, *, language: str | None = None) -> str:
        return (await self.transcribe_clip_detailed(clip, language=language)).text

    async def transcribe_clip_detailed(
        self,
        clip: Clip,
        *,
        language: str | None = None,
        prompt: str | None = None,
        words: bool = False,
    ) -> Transcript:
        stt, _ = self._ready()
        samples = await asyncio.to_thread(resample, clip.samples, clip.rate, STT_RATE)
        if is_silent(samples):  # recognisers hallucinate words in digital silence
            self.timings["stt_s"] = 0.0
            return Transcript("", len(samples) / STT_RATE, language)
        started = time.perf_counter()
        result = await asyncio.to_thread(
            stt.transcribe_detailed, samples, language=language, prompt=prompt, words=words
        )
        self.timings["stt_s"] = time.perf_counter() - started
        self.timings["stt_audio_s"] = len(samples) / STT_RATE
        return result

    async def transcribe(self, pcm: bytes, sample_rate: int) -> str:
        return await self.transcribe_clip(decode_pcm16(pcm, sample_rate))

    async def transcribe_detailed(
        self,
        pcm: bytes,
        sample_rate: int,
        *,
        language: str | None = None,
        prompt: str | None = None,
        words: bool = False,
    ) -> Transcript:
        return await self.transcribe_clip_detailed(
            decode_pcm16(pcm, sample_rate), language=language, prompt=prompt, words=words
        )

    async def transcribe_stream(
        self, chunks: AsyncIterator[bytes], sample_rate: int
    ) -> AsyncIterator[TranscriptEvent]:
        """PCM16 chunks in; partial transcripts as they change, then the final one."""
        stt, _ = self._ready()
        check_rate(sample_rate)
        session = await asyncio.to_thread(stt.stream)
        carry = b""
        seconds = 0.0
        try:
            async for chunk in chunks:
                data = carry + chunk
                cut = len(data) - (len(data) % 2)
                carry = data[cut:]
                if not cut:
                    continue
                samples = from_pcm16(data[:cut])
                seconds += len(samples) / sample_rate
                samples = await asyncio.to_thread(resample, samples, sample_rate, STT_RATE)
                partial = await asyncio.to_thread(session.accept, samples)
                if partial:
                    yield TranscriptEvent(partial, final=False, start=0.0, end=seconds)
            final = await asyncio.to_thread(session.finish)
            yield TranscriptEvent(final, final=True, start=0.0, end=seconds)
        finally:
            await asyncio.to_thread(session.close)

    # --- text to speech ---------------------------------------------------------
    async def synthesize(
        self, text: str, *, voice: str | None = None, speed: float | None = None
    ) -> Clip:
        """The whole text spoken, at `output_rate`."""
        stream = self.speak_stream(_once(text), voice=voice, speed=speed)
        parts = [from_pcm16(b) async for b in stream]
        samples = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
        return Clip(samples, self.output_rate)

    async def check_voice(self, voice: str | None) -> None:
        _, tts = self._ready()
        await asyncio.to_thread(tts.check_voice, voice)  # may load a voice file

    def voices(self) -> list[str]:
        _, tts = self._ready()
        return tts.voices()

    async def speak_stream(
        self, text: AsyncIterator[str], *, voice: str | None = None, speed: float | None = None
    ) -> AsyncIterator[bytes]:
        """PCM16 at `output_rate`, starting at the first complete sentence.

        A reader task keeps pulling the text stream (so the LLM answer is read and
        persisted at its own pace) while sentences are synthesised in order.
        """
        _, tts = self._ready()
        await asyncio.to_thread(tts.check_voice, voice)
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.timings.pop("first_audio_s", None)

        async def reader() -> None:
            try:
                first = True
                async for sentence in sentences(text):
                    self.timings.setdefault("first_sentence_at", time.perf_counter())
                    for piece in first_clause(sentence) if first else (sentence,):
                        await queue.put(piece)
                    first = False
            finally:
                await queue.put(None)

        task = asyncio.create_task(reader())
        self.timings.pop("first_sentence_at", None)
        try:
            while (sentence := await queue.get()) is not None:
                async for chunk in self._speak_sentence(tts, sentence, voice, speed):
                    if "first_audio_s" not in self.timings and "first_sentence_at" in self.timings:
                        self.timings["first_audio_s"] = (
                            time.perf_counter() - self.timings["first_sentence_at"]
                        )
                    yield chunk
            await task  # re-raise a failure of the text stream
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _speak_sentence(
        self, tts: TTS, sentence: str, voice: str | None, speed: float | None
    ) -> AsyncIterator[bytes]:
        iterator = tts.stream(sentence, voice=voice, speed=speed)
        sentinel = object()
        while True:
            item = await asyncio.to_thread(next, iterator, sentinel)
            if item is sentinel or not isinstance(item, np.ndarray):
                return
            samples = item
            if tts.rate != self.output_rate:
                samples = await asyncio.to_thread(resample, samples, tts.rate, self.output_rate)
            if len(samples):
                yield Clip(samples, self.output_rate).pcm16()

    async def create_realtime_session(self, **options: Any) -> Any:
        from cozy.engines.voice.realtime import RealtimeTranscriber

        stt, _ = self._ready()
        return RealtimeTranscriber(
            stt, self.new_segmenter, default_partial_ms=self.opts.partial_interval_ms, **options
        )


async def _once(text: str) -> AsyncIterator[str]:
    yield text
