"""Text-to-speech providers: espeak-ng (the light fallback), OpenAI-compatible, and the
factory (Piper, the default, lives in `tts_piper.py`).

Providers are blocking; the voice engine runs them in threads, one sentence at a
time, so speech starts as soon as the first sentence of an answer is complete.
`stream(text)` yields float32 chunks at the provider's `rate`.
"""

from __future__ import annotations

import shutil
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cozy.core.errors import EngineError, UsageError
from cozy.engines.voice.audio import AudioFormatError, Clip, decode, from_pcm16
from cozy.engines.voice.options import EspeakOptions, OpenAITTSOptions

if TYPE_CHECKING:
    from cozy.engines.voice.audio import Samples

# OpenAI's voice names: accepted everywhere so OpenAI clients work unchanged; each
# provider maps them to one of its own voices.
OPENAI_VOICES = frozenset(
    {"alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer",
     "verse", "marin", "cedar"}
)  # fmt: skip
# names that mean "the configured voice" (the realtime API's default is "cozy")
DEFAULT_NAMES = frozenset({"cozy", "default"})
ESPEAK_HINT = "install it with `sudo apt-get install espeak-ng` (or `./install.sh --system`)"


class TTS(ABC):
    name: str = ""
    rate: int = 22_050
    fallback_reason: str = ""  # set when this voice stands in for the configured one
    model_dir: Path | None = None

    @abstractmethod
    def synthesize(self, text: str) -> Clip: ...

    def stream(
        self, text: str, *, voice: str | None = None, speed: float | None = None
    ) -> Iterator[Samples]:
        yield self.synthesize(text).samples

    def voices(self) -> list[str]:
        return sorted(OPENAI_VOICES)

    def check_voice(self, voice: str | None) -> None:  # noqa: B027 - optional
        """Raise `UsageError` for a voice this provider cannot speak with."""

    def close(self) -> None:  # noqa: B027 - optional
        """Release clients."""


class EspeakTTS(TTS):
    """espeak-ng as a subprocess (text on stdin, WAV on stdout)."""

    name = "espeak"

    def __init__(self, options: EspeakOptions | Mapping[str, Any] | None = None) -> None:
        o = EspeakOptions.of(options or {}, "voice.tts")
        found = shutil.which(o.binary)
        if found is None:
            raise EngineError(f"the espeak-ng binary '{o.binary}' was not found", hint=ESPEAK_HINT)
        self.binary = found
        self.voice, self.speed, self.pitch, self.timeout = o.voice, o.speed, o.pitch, o.timeout
        self.rate = 22_050
        self._known: set[str] = set()  # voice names espeak-ng has accepted

    def _args(self, voice: str | None = None, speed: float | None = None) -> list[str]:
        name = self.voice if not voice or voice in OPENAI_VOICES | DEFAULT_NAMES else voice
        wpm = max(80, min(500, round(self.speed * (speed or 1.0))))
        args = [self.binary, "--stdout", "--stdin", "-v", name, "-s", str(wpm)]
        if self.pitch is not None:
            args += ["-p", str(self.pitch)]
        return args

    def voices(self) -> list[str]:
        return sorted({*OPENAI_VOICES, self.voice})

    def check_voice(self, voice: str | None) -> None:
        """espeak-ng takes any language or voice file name after -v, so a name is tried
        once (quietly, no audio): an unknown one fails here, before a streamed answer
        has begun, not in the middle of it."""
        if not voice or voice in OPENAI_VOICES | DEFAULT_NAMES or voice in self._known:
            return
        try:
            proc = subprocess.run(
                [self.binary, "-q", "-v", voice, "x"],
                capture_output=True,
                timeout=self.timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise EngineError(f"espeak-ng could not be run: {exc}", hint=ESPEAK_HINT) from exc
        if proc.returncode != 0:
            raise UsageError(
                f"unknown voice '{voice}'",
                hint="use one of: " + ", ".join(self.voices()) + ", or an espeak-ng voice "
                "(`espeak-ng --voices` lists them)",
            )
        self._known.add(voice)

    def stream(
        self, text: str, *, voice: str | None = None, speed: float | None = None
    ) -> Iterator[Samples]:
        yield self._run(text, voice, speed).samples

    def synthesize(self, text: str) -> Clip:
        return self._run(text, None, None)

    def _run(self, text: str, voice: str | None, speed: float | None) -> Clip:
        if not text.strip():
            return Clip(np.zeros(0, dtype=np.float32), self.rate)
        try:
            proc = subprocess.run(
                self._args(voice, speed),
                input=text.encode("utf-8"),
                capture_output=True,
                timeout=self.timeout,
                check=False,
            )
        except FileNotFoundError as exc:
            raise EngineError("espeak-ng disappeared", hint=ESPEAK_HINT) from exc
        except subprocess.TimeoutExpired as exc:
            raise EngineError(
                f"espeak-ng took more than {self.timeout:.0f} s", hint="raise voice.tts.timeout"
            ) from exc
        if proc.returncode != 0 or not proc.stdout:
            err = proc.stderr.decode("utf-8", "replace").strip()
            raise EngineError(
                f"espeak-ng failed ({proc.returncode}): {err or 'no output'}",
                hint=f"check voice.tts.voice ('{self.voice}'): list voices with "
                "`espeak-ng --voices`",
            )
        try:
            clip = decode(_fix_stream_header(proc.stdout), what="espeak-ng output")
        except AudioFormatError as exc:
            raise EngineError(f"espeak-ng produced unreadable audio: {exc}") from exc
        self.rate = clip.rate
        return clip


def _fix_stream_header(wav: bytes) -> bytes:
    """espeak-ng writes 0xFFFFFFFF sizes to stdout; put the real sizes in."""
    if len(wav) >= 44 and wav[:4] == b"RIFF" and wav[36:40] == b"data":
        size = len(wav) - 44
        return (
            wav[:4] + (36 + size).to_bytes(4, "little") + wav[8:40] + size.to_bytes(4, "little")
        ) + wav[44:]
    return wav


class OpenAITTS(TTS):
    """Any OpenAI-compatible `/v1/audio/speech`, streamed as 24 kHz PCM."""

    name = "openai"
    rate = 24_000

    def __init__(self, options: OpenAITTSOptions | Mapping[str, Any] | None = None) -> None:
        from cozy.engines.openai_compat import sync_client

        o = OpenAITTSOptions.of(options or {}, "voice.tts")
        self.model, self.voice, self.speed = o.model, o.voice, o.speed
        self._client = sync_client(o, timeout=o.timeout, max_retries=o.max_retries)

    def stream(
        self, text: str, *, voice: str | None = None, speed: float | None = None
    ) -> Iterator[Samples]:
        from cozy.engines.openai_compat import voice_errors

        if not text.strip():
            return
        kw: dict[str, Any] = {
            "model": self.model,
            "voice": self.voice if not voice or voice in DEFAULT_NAMES else voice,
            "input": text,
            "response_format": "pcm",
        }
        if self.speed is not None or speed is not None:
            kw["speed"] = (self.speed or 1.0) * (speed or 1.0)
        check = "voice.tts.model, voice.tts.voice and voice.tts.api_key"
        with (
            voice_errors("speech", self._client.base_url, "voice.tts", check),
            self._client.audio.speech.with_streaming_response.create(**kw) as resp,
        ):
            carry = b""
            for chunk in resp.iter_bytes(4096):
                data = carry + chunk
                cut = len(data) - (len(data) % 2)
                carry = data[cut:]
                if cut:
                    yield from_pcm16(data[:cut])

    def synthesize(self, text: str) -> Clip:
        parts = list(self.stream(text))
        samples = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
        return Clip(samples, self.rate)

    def close(self) -> None:
        self._client.close()
