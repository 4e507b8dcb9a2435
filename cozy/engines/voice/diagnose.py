"""`cozy doctor` for the local voice: which STT/TTS are active, their model files and
hashes, and a self-test that speaks a sentence and reads it back.

The self-test is the check that matters: an engine can load and still not understand
(issue #19: pocketsphinx heard "what is the capital of France" as "what is the law
on"), so `ok` is only given when the sentence comes back nearly word for word.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from cozy.core.errors import CozyError
from cozy.engines.base import Health

if TYPE_CHECKING:
    from cozy.engines.voice.audio import Clip
    from cozy.engines.voice.stt import STT
    from cozy.engines.voice.tts import TTS


class _Voice(Protocol):
    """What the diagnosis uses of the local voice engine (no import of it: no cycle)."""

    async def initialize(self) -> None: ...

    def _ready(self) -> tuple[STT, TTS]: ...

    async def synthesize(self, text: str) -> Clip: ...

    async def transcribe_clip(self, clip: Clip, *, language: str | None = None) -> str: ...


SELF_TEST = "what is the weather like today"
MAX_WER = 0.34  # one word in six wrong fails; Whisper reads this sentence back verbatim
FIX = "./install.sh --system --extras voice (then `cozy doctor` again)"


def _files(part: object) -> list[Path]:
    model_dir = getattr(part, "model_dir", None)
    model = getattr(part, "model", None)
    if isinstance(model, Path):
        return [model]
    if isinstance(model_dir, Path):
        return [model_dir / "model.bin"]
    return []


def _describe(paths: list[Path]) -> str:
    from cozy.engines.voice.model_files import describe_files

    out = []
    for info in describe_files(paths):
        if not info.get("present"):
            out.append(f"{info['path']} MISSING")
        else:
            size = int(str(info["bytes"])) / 1e6
            out.append(f"{info['path']} ({size:.0f} MB, sha256 {str(info['sha256'])[:16]}…)")
    return "; ".join(out)


async def diagnose(engine: _Voice) -> list[tuple[str, Health]]:
    from cozy.engines.voice.wer import wer

    try:
        await engine.initialize()
    except CozyError as exc:
        return [("voice", Health(ok=False, detail=str(exc), fix=exc.hint or FIX))]
    stt, tts = engine._ready()
    out: list[tuple[str, Health]] = []
    for label, part in (("voice stt", stt), ("voice tts", tts)):
        files = _files(part)
        detail = part.name + (f": {_describe(files)}" if files else "")
        if part.fallback_reason:
            out.append((label, Health(False, f"{detail} — FALLBACK, {part.fallback_reason}", FIX)))
        else:
            out.append((label, Health(True, detail)))
    started = time.perf_counter()
    try:
        clip = await engine.synthesize(SELF_TEST)
        heard = await engine.transcribe_clip(clip)
    except CozyError as exc:
        out.append(("voice self-test", Health(False, str(exc), exc.hint or FIX)))
        return out
    seconds = time.perf_counter() - started
    error = wer([SELF_TEST], [heard])
    detail = f"said {SELF_TEST!r}, heard {heard!r} (WER {error:.2f}, {seconds:.1f} s)"
    if error > MAX_WER:
        if stt.fallback_reason:
            fix = FIX
        elif stt.name == "pocketsphinx":
            fix = (
                "set `voice: {stt: {provider: faster-whisper}}` in engines.yaml: pocketsphinx "
                "mishears free speech (and grammar mode hears only its phrases)"
            )
        else:
            fix = "check voice.stt in engines.yaml (model_path, language) and voice.tts"
        out.append(("voice self-test", Health(False, "recognition is broken: " + detail, fix)))
    else:
        out.append(("voice self-test", Health(True, detail)))
    return out
