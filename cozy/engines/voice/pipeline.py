"""One voice turn: audio → transcript → answer stream → speech, with barge-in.

Face-agnostic: the caller passes `ask(transcript) -> AsyncIterator[str]` (the CLI
and the TUI wrap the orchestrator, so the turn is persisted like text chat) and a
`Sink`. Timings are measured from the end of speech: transcript, first token,
first complete sentence, first audio. A barge-in (`interrupt` event, or speech
detected on `listen` while speaking) empties the sink and closes the answer
stream, which the orchestrator saves as interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cozy.engines.capabilities import TranscribesClips
from cozy.engines.voice.audio import Clip
from cozy.engines.voice.io import Sink

if TYPE_CHECKING:
    from cozy.engines.voice.audio import Samples

Status = Callable[[str, dict[str, Any]], None]


@dataclass(slots=True)
class TurnResult:
    transcript: str = ""
    answer: str = ""
    status: str = "complete"  # complete | interrupted | no_speech
    timings: dict[str, float] = field(default_factory=dict)
    barge_in_latency: float | None = None  # stop() → playback silent, seconds
    audio_seconds: float = 0.0


async def voice_turn(
    voice: TranscribesClips,
    audio: Clip,
    ask: Callable[[str], AsyncIterator[str]],
    sink: Sink | None,
    *,
    status: Status | None = None,
    interrupt: asyncio.Event | None = None,
    listen: AsyncIterator[Samples] | None = None,
    language: str | None = None,
) -> TurnResult:
    say = status or (lambda _s, _i: None)
    result = TurnResult()
    t0 = time.perf_counter()
    say("transcribing", {"seconds": audio.seconds})
    result.transcript = (await voice.transcribe_clip(audio, language=language)).strip()
    result.timings["transcript_s"] = time.perf_counter() - t0
    if not result.transcript:
        result.status = "no_speech"
        say("no_speech", {})
        return result
    say("thinking", {"transcript": result.transcript})

    answer: list[str] = []
    deltas = ask(result.transcript)

    async def tracked() -> AsyncIterator[str]:
        async for delta in deltas:
            if delta and "first_token_s" not in result.timings:
                result.timings["first_token_s"] = time.perf_counter() - t0
            answer.append(delta)
            yield delta

    stop = interrupt or asyncio.Event()
    watchers: list[asyncio.Task[Any]] = []
    if listen is not None:
        watchers.append(asyncio.create_task(_listen_for_speech(voice, listen, stop)))

    async def speak() -> None:
        if sink is None:  # text only (no speaker, no output file): read the answer
            async for _ in tracked():
                pass
            return
        async for pcm in voice.speak_stream(tracked()):
            if "first_audio_s" not in result.timings:
                result.timings["first_audio_s"] = time.perf_counter() - t0
                if "first_sentence_at" in voice.timings:
                    result.timings["sentence_to_audio_s"] = voice.timings.get("first_audio_s", 0.0)
                say("speaking", {})
            result.audio_seconds += len(pcm) / 2 / sink.rate
            await sink.write(pcm)
        await sink.drain()

    speaker = asyncio.create_task(speak())
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({speaker, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set() and not speaker.done():
            if sink is not None:
                sink.stop()  # silence first, then tidy up
            result.status = "interrupted"
            speaker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await speaker
            await asyncio.sleep(0.05)  # let the playback loop confirm silence
            result.barge_in_latency = sink.buffer.stop_latency if sink is not None else None
            say("interrupted", {})
        else:
            await speaker  # re-raise a failure
    finally:
        for task in (stopper, *watchers):
            task.cancel()
        with contextlib.suppress(Exception):
            await deltas.aclose()  # type: ignore[attr-defined]
    result.answer = "".join(answer)
    result.timings["total_s"] = time.perf_counter() - t0
    return result


async def _listen_for_speech(
    voice: TranscribesClips, source: AsyncIterator[Samples], stop: asyncio.Event
) -> None:
    """Barge-in by voice: set `stop` when the VAD hears speech on `source`."""
    seg = await voice.new_segmenter(min_speech_ms=150)
    async for chunk in source:
        events = await asyncio.to_thread(seg.push, chunk)
        if any(kind == "start" for kind, _ in events):
            stop.set()
            return


async def record_utterance(
    voice: TranscribesClips,
    source: AsyncIterator[Samples],
    *,
    use_vad: bool,
    stop: asyncio.Event | None = None,
    level: Callable[[float], None] | None = None,
    max_seconds: float = 60.0,
) -> Clip:
    """Collect 16 kHz audio until `stop` is set, the VAD hears the end, or the source ends."""
    import numpy as np

    from cozy.engines.voice.audio import STT_RATE, level_db

    seg = await voice.new_segmenter() if use_vad else None
    chunks: list[Samples] = []
    heard = False
    total = 0
    async for chunk in source:
        chunks.append(chunk)
        total += len(chunk)
        if level is not None:
            level(level_db(chunk))
        if seg is not None:
            for kind, _ in await asyncio.to_thread(seg.push, chunk):
                heard = heard or kind == "start"
                if kind == "end" and heard:
                    return Clip(np.concatenate(chunks), STT_RATE)
        if (stop is not None and stop.is_set()) or total >= max_seconds * STT_RATE:
            break
    samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
    return Clip(samples, STT_RATE)
