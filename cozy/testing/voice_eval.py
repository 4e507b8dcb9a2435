"""A fixed speech evaluation set, generated when it is needed (no recordings shipped).

Fifty short everyday sentences, spoken by espeak-ng in two voices (US and British
English) and by Piper (en_US-joe-medium), then scored by word error rate. The tests
use a slice of it, `bench/bench_voice.py` the whole set. Numbers are written as words
and the sentences avoid spellings a recogniser may legitimately vary ("ok"/"okay").
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cozy.engines.voice.audio import STT_RATE, Clip, decode
from cozy.engines.voice.wer import normalize, wer

__all__ = ["SENTENCES", "Sample", "normalize", "samples", "speakers", "wer"]

SENTENCES: tuple[str, ...] = (
    "what time is it",
    "what is the capital of france",
    "turn on the kitchen lights",
    "what is the weather like today",
    "please remind me to call my mother tomorrow",
    "how far away is the moon",
    "set an alarm for seven in the morning",
    "tell me a joke about computers",
    "i would like a cup of coffee",
    "play some quiet music in the living room",
    "how do i make fresh bread at home",
    "send a message to my brother",
    "what is on my calendar this afternoon",
    "read me the news headlines",
    "how long does it take to boil an egg",
    "find a good restaurant near the station",
    "what is the population of canada",
    "translate good morning into spanish",
    "add milk and eggs to the shopping list",
    "who wrote the first computer program",
    "open the garage door",
    "how many days are there in a leap year",
    "start a timer for ten minutes",
    "what is the difference between a frog and a toad",
    "close the window in the bedroom",
    "explain how a rainbow forms",
    "when does the next train leave for london",
    "lower the volume please",
    "what should i cook for dinner tonight",
    "how tall is the eiffel tower",
    "book a table for two on friday",
    "where did i park the car",
    "give me a short summary of the meeting",
    "is it going to rain this weekend",
    "water the plants in the garden",
    "what is the square root of nine",
    "call the doctor and ask for an appointment",
    "how do you say thank you in german",
    "switch off the television",
    "what year did the war end",
    "show me photos from last summer",
    "how much sleep does a child need",
    "turn the heating up a little",
    "what is the best way to learn to swim",
    "lock the front door",
    "recommend a good book about history",
    "why is the sky blue",
    "pause the music",
    "how do plants make their food",
    "thank you that is all for now",
)


@dataclass(frozen=True, slots=True)
class Sample:
    speaker: str
    text: str
    clip: Clip  # 16 kHz mono, with a little silence either side


Speaker = Callable[[str], Clip]


def espeak_speaker(voice: str, speed: int = 165) -> Speaker:
    def speak(text: str) -> Clip:
        binary = shutil.which("espeak-ng")
        if binary is None:
            raise RuntimeError("espeak-ng is not installed (./install.sh --system)")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "s.wav"
            subprocess.run(
                [binary, "-v", voice, "-s", str(speed), "-w", str(path), text],
                check=True,
                timeout=60,
            )
            return decode(path)

    return speak


def piper_speaker() -> Speaker:
    from cozy.engines.voice.tts_piper import PiperTTS

    tts = PiperTTS({})
    return tts.synthesize


def speakers() -> dict[str, Speaker]:
    """The three speakers of the set, built lazily by `samples`."""
    return {
        "espeak en-us": espeak_speaker("en-us"),
        "espeak en-gb": espeak_speaker("en-gb", 150),
        "piper joe": piper_speaker(),
    }


def _padded(clip: Clip) -> Clip:
    samples = clip.at(STT_RATE).samples
    pad = np.zeros(int(0.3 * STT_RATE), dtype=np.float32)
    return Clip(np.concatenate([pad, samples, pad]), STT_RATE)


def samples(
    per_speaker: int | None = None, voices: dict[str, Speaker] | None = None
) -> list[Sample]:
    """Every speaker says the first `per_speaker` sentences (all when None); each
    speaker starts at a different offset so a slice still covers varied sentences."""
    out: list[Sample] = []
    chosen = voices if voices is not None else speakers()
    count = len(SENTENCES) if per_speaker is None else per_speaker
    for index, (name, speak) in enumerate(chosen.items()):
        offset = (index * len(SENTENCES)) // max(1, len(chosen))
        for i in range(count):
            text = SENTENCES[(offset + i) % len(SENTENCES)]
            out.append(Sample(name, text, _padded(speak(text))))
    return out
