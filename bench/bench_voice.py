"""Voice benchmark: word error rate per recogniser, STT/TTS real-time factors, time to
first audio, a voice-turn breakdown, barge-in.

    .venv/bin/python bench/bench_voice.py [--runs 3] [--eval 50]

The evaluation set is cozy.testing.voice_eval: 50 sentences spoken by espeak-ng (US and
British voices) and Piper, generated at run time (`--eval N`: N sentences per speaker).
The model is cozy's fake model server (so "first token" is the orchestrator + HTTP
overhead, not a real LLM). Targets (issues #8, #19): first audio <= 150 ms after the
first sentence is complete, barge-in <= 100 ms; STT RTF is reported, not targeted.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from cozy.engines.voice.audio import Clip, decode

COMMANDS = ["turn on the kitchen lights", "set a timer for five minutes", "what time is it"]
ANSWER = "Sure, here is the plan for today. First we walk. Then we eat."
TESTS_DIR = Path(__file__).resolve().parent.parent / "tests"
DICTATION = [
    "please remind me to call my mother tomorrow morning",
    "what is the weather like today in the city",
    "tell me a joke about computers and their owners",
]


def espeak(text: str) -> Clip:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(path), text], check=True)
        clip = decode(path).at(16_000)
    pad = np.zeros(4800, dtype=np.float32)
    return Clip(np.concatenate([pad, clip.samples, pad]), 16_000)


def ms(value: float) -> str:
    return f"{value * 1000:.0f} ms"


def bench_wer(per_speaker: int) -> list[tuple[str, str, str]]:
    """WER and RTF per recogniser on the same generated audio."""
    from cozy.engines.voice.stt import PocketSphinxSTT
    from cozy.engines.voice.stt_whisper import FasterWhisperSTT
    from cozy.testing import voice_eval

    started = time.perf_counter()
    samples = voice_eval.samples(per_speaker)
    audio = sum(s.clip.seconds for s in samples)
    rows = [("eval set", f"{len(samples)} clips", f"{audio:.0f} s of speech, generated in "
             f"{time.perf_counter() - started:.0f} s")]  # fmt: skip
    engines = [
        ("whisper-base int8 (language en)", lambda: FasterWhisperSTT({"language": "en"})),
        ("whisper-base int8 (language auto)", lambda: FasterWhisperSTT({})),
        ("pocketsphinx (dictation LM)", lambda: PocketSphinxSTT({})),
    ]
    for name, build in engines:
        t0 = time.perf_counter()
        stt = build()
        load = time.perf_counter() - t0
        heard, rtfs = [], []
        for sample in samples:
            t0 = time.perf_counter()
            heard.append(stt.transcribe(sample.clip.samples))
            rtfs.append((time.perf_counter() - t0) / sample.clip.seconds)
        refs = [s.text for s in samples]
        per = []
        for speaker in dict.fromkeys(s.speaker for s in samples):
            pairs = [(r, h) for r, h, s in zip(refs, heard, samples, strict=True)
                     if s.speaker == speaker]  # fmt: skip
            per.append(f"{speaker.split()[-1]} {voice_eval.wer(*zip(*pairs, strict=True)):.3f}")
        rows.append((f"WER {name}", f"{voice_eval.wer(refs, heard):.3f}", ", ".join(per)))
        print(f"  {rows[-1]}", file=sys.stderr, flush=True)
        rows.append((f"STT RTF {name}", f"{statistics.median(rtfs):.3f}",
                     f"median per clip; p90 {sorted(rtfs)[int(0.9 * len(rtfs))]:.3f}; "
                     f"load {load:.1f} s"))  # fmt: skip
    return rows


def bench_stt(runs: int) -> list[tuple[str, str, str]]:
    from cozy.engines.voice.stt import PocketSphinxSTT

    rows = []
    setups = [("pocketsphinx (grammar)", {"grammar": COMMANDS}, COMMANDS)]
    for name, options, texts in setups:
        stt = PocketSphinxSTT(options)
        clips = [espeak(t) for t in texts]
        rtfs = []
        for _ in range(runs):
            for clip in clips:
                started = time.perf_counter()
                stt.transcribe(clip.samples)
                rtfs.append((time.perf_counter() - started) / clip.seconds)
        rows.append((f"STT RTF {name}", f"{statistics.median(rtfs):.3f}", "command mode"))
    return rows


async def bench_tts(runs: int) -> list[tuple[str, str, str]]:
    from cozy.engines.voice.engine import LocalVoice

    rows = []
    for name, tts in (("piper joe", {"provider": "piper"}), ("espeak", {"provider": "espeak"})):
        engine = LocalVoice({"stt": {"provider": "pocketsphinx"}, "tts": tts})
        await engine.initialize()
        first, total, audio = [], [], []

        async def llm() -> object:
            for word in ANSWER.split():
                yield word + " "

        for _ in range(runs + 1):
            started = time.perf_counter()
            seconds = 0.0
            async for pcm in engine.speak_stream(llm()):  # type: ignore[arg-type]
                seconds += len(pcm) / 2 / engine.output_rate
            total.append(time.perf_counter() - started)
            first.append(engine.timings["first_audio_s"])
            audio.append(seconds)
        first, total, audio = first[1:], total[1:], audio[1:]  # the first run warms up
        await engine.close()
        rtf = statistics.median(t / a for t, a in zip(total, audio, strict=True))
        rows += [
            (f"TTS {name}: first sentence complete -> first audio",
             ms(statistics.median(first)), "<= 150 ms"),
            (f"TTS {name}: RTF (3 sentences)", f"{rtf:.3f}",
             f"audio {statistics.median(audio):.1f} s in {ms(statistics.median(total))}"),
        ]  # fmt: skip
    return rows


async def bench_turn(runs: int) -> list[tuple[str, str, str]]:
    sys.path.insert(0, str(TESTS_DIR))
    from helpers import open_runtime

    from cozy.core.events import TextDelta
    from cozy.core.orchestrator import ChatRequest
    from cozy.core.types import Caller
    from cozy.engines.voice.engine import LocalVoice
    from cozy.engines.voice.io import WavSink
    from cozy.engines.voice.pipeline import voice_turn
    from cozy.testing import FakeModelServer

    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp, FakeModelServer() as fake:
        home = Path(tmp)
        fake.add_rule(user_contains="kitchen", text="Done, the lights are on. Anything else?")
        # the defaults: faster-whisper (whisper-base) and Piper
        yaml = "voice:\n  provider: local\n  stt: {provider: faster-whisper, language: en}\n"
        rt = await open_runtime(home, fake.url, yaml)
        voice = await rt.engine("voice")
        assert isinstance(voice, LocalVoice)

        async def ask(text: str):  # type: ignore[no-untyped-def]
            events = rt.orchestrator.run(ChatRequest(prompt=text, caller=Caller(face="voice")))
            async for event in events:
                if isinstance(event, TextDelta):
                    yield event.text

        clip = espeak("turn on the kitchen lights")
        timings: dict[str, list[float]] = {}
        for _ in range(runs):
            sink = WavSink(home / "a.wav", voice.output_rate)
            result = await voice_turn(voice, clip, ask, sink)
            await sink.close()
            assert result.status == "complete", (result.status, result.transcript)
            for key, value in result.timings.items():
                timings.setdefault(key, []).append(value)
        for key, label in (
            ("transcript_s", "turn: end of speech -> transcript (whisper-base)"),
            ("first_token_s", "turn: end of speech -> first token (fake model)"),
            ("first_audio_s", "turn: end of speech -> first answer audio (Piper)"),
            ("sentence_to_audio_s", "turn: first sentence complete -> first audio"),
        ):
            rows.append((label, ms(statistics.median(timings[key])), ""))

        fake.queue_reply(" ".join(f"Sentence {i} of a long answer." for i in range(20)))
        lat = []
        for _ in range(runs):
            fake.queue_reply(" ".join(f"Sentence {i} of a long answer." for i in range(20)))
            sink = WavSink(home / "b.wav", voice.output_rate, realtime=True)
            press = asyncio.Event()

            def on_status(state: str, _info: dict[str, object], ev: asyncio.Event = press) -> None:
                if state == "speaking":  # press 0.5 s into the spoken answer
                    asyncio.get_running_loop().call_later(0.5, ev.set)

            result = await voice_turn(voice, clip, ask, sink, interrupt=press, status=on_status)
            await sink.close()
            if result.barge_in_latency is not None:
                lat.append(result.barge_in_latency)
        value = f"{ms(max(lat))} max, {ms(statistics.median(lat))} med"
        rows.append(("barge-in: stop() -> playback silent (20 ms blocks)", value, "<= 100 ms"))
        await rt.close()
    return rows


def bench_vad(runs: int) -> list[tuple[str, str, str]]:
    from cozy.engines.voice.vad import SileroVAD, WebRtcVAD

    rows = []
    samples = espeak(" ".join(DICTATION)).samples
    for vad in (SileroVAD(), WebRtcVAD()):
        frames = len(samples) // vad.frame
        started = time.perf_counter()
        for _ in range(runs):
            vad.reset()
            for i in range(frames):
                vad.prob(samples[i * vad.frame : (i + 1) * vad.frame])
        per = (time.perf_counter() - started) / (runs * frames)
        rows.append((f"VAD {vad.name}: per {vad.frame}-sample frame", f"{per * 1e6:.0f} us",
                     f"RTF {per / (vad.frame / 16_000):.4f}"))  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--eval", type=int, default=50, help="sentences per speaker (<= 50)")
    args = parser.parse_args()
    runs = args.runs
    rows = []
    if args.eval > 0:  # --eval 0: skip the WER table (the slow part)
        print(f"eval set: {args.eval} sentences x 3 speakers", file=sys.stderr, flush=True)
        rows = bench_wer(args.eval)
    rows += bench_stt(runs)
    print("\n".join(map(str, rows)), file=sys.stderr, flush=True)
    rows += asyncio.run(bench_tts(runs))
    print("\n".join(map(str, rows[-4:])), file=sys.stderr, flush=True)
    rows += asyncio.run(bench_turn(runs))
    rows += bench_vad(runs)
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>22}  target/note")
    print("-" * (width + 40))
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>22}  {note}")


if __name__ == "__main__":
    main()
