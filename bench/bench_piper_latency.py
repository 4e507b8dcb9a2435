"""Where Piper's time to first audio goes, and what cozy's settings change (issue #19).

    .venv/bin/python bench/bench_piper_latency.py [--runs 15]

Time to first audio = the synthesis of the first thing spoken. This splits it into
voice load, phonemize (espeak-ng), and the ONNX inference, for the first clause
("Sure,") and for whole first sentences, and compares side by side in one process,
runs interleaved so load changes hit every variant alike:

- `piper default`: `PiperVoice.load` as shipped (ONNX Runtime threads spin-wait);
- `cozy`: `tts_piper._load` (no spin-waiting), the session cozy uses;
- `cozy 1 thread`: the same with `voice.tts.threads: 1`.

"cold" is the first synthesis of a freshly loaded voice (what the first answer of a
`cozy voice` run paid before cozy warmed the voice at load); wall and CPU times are
both shown (CPU time is less sensitive to other work on the box). Note `uptime`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

from piper import PiperVoice, SynthesisConfig

from cozy.engines.voice.model_files import piper_voice
from cozy.engines.voice.tts_piper import _load

TEXTS = ["Sure,", "Done, the lights are on.", "The capital of France is Paris."]


def clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def since(t: tuple[float, float]) -> tuple[float, float]:
    return time.perf_counter() - t[0], time.process_time() - t[1]


def infer(voice: Any, text: str) -> tuple[tuple[float, float], tuple[float, float], float]:
    t = clock()
    phonemes = voice.phonemize(text)
    phon = since(t)
    t = clock()
    seconds = 0.0
    for sentence in phonemes:
        audio = voice.phoneme_ids_to_audio(voice.phonemes_to_ids(sentence), SynthesisConfig())
        seconds += len(audio) / voice.config.sample_rate
    return phon, since(t), seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    path = piper_voice()
    print(os.popen("uptime").read().strip())
    builders = {
        "piper default": lambda: PiperVoice.load(path),
        "cozy": lambda: _load(path, 0),
        "cozy 1 thread": lambda: _load(path, 1),
    }
    voices: dict[str, Any] = {}
    rows: list[tuple[str, str, str]] = []
    for name, build in builders.items():
        t = clock()
        voices[name] = build()
        load = since(t)
        _phon, cold, _ = infer(voices[name], TEXTS[0])
        rows.append(
            (f"{name}: load voice", f"{load[0] * 1000:.0f} ms", f"cpu {load[1] * 1000:.0f} ms")
        )
        rows.append((f"{name}: cold first clause 'Sure,'", f"{cold[0] * 1000:.0f} ms",
                     f"cpu {cold[1] * 1000:.0f} ms"))  # fmt: skip
    results: dict[tuple[str, str], list[Any]] = {}
    for _ in range(args.runs):
        for name, voice in voices.items():
            for text in TEXTS:
                results.setdefault((name, text), []).append(infer(voice, text))
    for text in TEXTS:
        for name in voices:
            got = results[(name, text)]
            wall = sorted(r[1][0] for r in got)
            cpu = statistics.median(r[1][1] for r in got)
            phon = statistics.median(r[0][0] for r in got)
            rows.append((
                f"{name}: warm {text!r}",
                f"{statistics.median(wall) * 1000:.0f} ms",
                f"p90 {wall[int(0.9 * len(wall))] * 1000:.0f} ms, cpu {cpu * 1000:.0f} ms, "
                f"phonemize {phon * 1000:.1f} ms, audio {got[0][2]:.2f} s",
            ))  # fmt: skip
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'median wall':>12}  note")
    print("-" * (width + 60))
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>12}  {note}")
    print(os.popen("uptime").read().strip())


if __name__ == "__main__":
    main()
