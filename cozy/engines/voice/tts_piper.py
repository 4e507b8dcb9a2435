"""Piper (neural, ONNX, offline): the default voice. piper-tts is GPL-3.0, so it stays in
the optional `voice` extra; cozy itself only calls it. Options: `PiperOptions`, e.g.
`voices: {nova: ~/voices/en_US-amy-medium.onnx}` maps names (OpenAI's too) to voices.

Time to first audio is the synthesis time of the first clause, so two things are done
at load: ONNX Runtime runs one thread that never spin-waits (the answer's model keeps
generating while the first clause is synthesised, and on a shared CPU a spinning or
second thread takes the core the working one needs; bench/bench_piper_latency.py), and
each voice is warmed up once with a short phrase (the first run of a session allocates
its buffers, otherwise paid by the first answer of every `cozy voice` run).

OpenAI voice names (alloy, echo, nova, ...) not listed in `voices` use `model`, so
OpenAI clients work unchanged; a path to an .onnx file picks that voice directly.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cozy.core.errors import EngineError, MissingExtraError, UsageError
from cozy.engines.voice.audio import Clip, resample
from cozy.engines.voice.options import PACKAGED_VOICE, PiperOptions
from cozy.engines.voice.tts import DEFAULT_NAMES, OPENAI_VOICES, TTS

if TYPE_CHECKING:
    from cozy.engines.voice.audio import Samples


def _voice_file(value: str) -> Path:
    if value in (PACKAGED_VOICE, "joe", "default"):
        from cozy.engines.voice.model_files import piper_voice

        return piper_voice()
    path = Path(value).expanduser()
    if path.suffix != ".onnx":
        path = path.with_name(path.name + ".onnx") if not path.is_dir() else path
    if not path.is_file() or not Path(str(path) + ".json").is_file():
        raise EngineError(
            f"no Piper voice at {path} (the .onnx and its .onnx.json are both needed)",
            hint="set voice.tts.model to a Piper .onnx voice, or `en_US-joe-medium`",
        )
    return path


class PiperTTS(TTS):
    name = "piper"

    def __init__(self, options: PiperOptions | Mapping[str, Any] | None = None) -> None:
        o = PiperOptions.of(options or {}, "voice.tts")
        try:
            from piper import SynthesisConfig
        except ImportError as exc:
            raise MissingExtraError("voice", "the Piper voice") from exc
        self._config_cls = SynthesisConfig
        self.threads = o.threads
        self.model = _voice_file(o.model)
        self.model_dir = self.model.parent
        self.speed, self.noise_scale, self.noise_w = o.speed, o.noise_scale, o.noise_w
        self.voice_map = o.voices
        self._voices: dict[Path, Any] = {}
        self._lock = threading.Lock()
        default = self._voice(self.model)  # load now: errors surface at startup
        self.rate = int(default.config.sample_rate)

    def _voice(self, path: Path) -> Any:
        with self._lock:
            voice = self._voices.get(path)
            if voice is None:
                try:
                    voice = _load(path, self.threads)
                    _warm_up(voice, self._config_cls)
                except Exception as exc:  # onnxruntime and piper raise their own types
                    raise EngineError(
                        f"Piper could not load {path}: {exc}",
                        hint="check that it is a Piper voice (.onnx with its .onnx.json)",
                    ) from exc
                self._voices[path] = voice
            return voice

    def voices(self) -> list[str]:
        return sorted({*OPENAI_VOICES, *self.voice_map, PACKAGED_VOICE})

    def _pick(self, voice: str | None) -> Path:
        if not voice or voice == PACKAGED_VOICE or voice in DEFAULT_NAMES:
            return self.model
        if voice in self.voice_map:
            return _voice_file(self.voice_map[voice])
        if voice in OPENAI_VOICES:
            return self.model
        if voice.endswith(".onnx") or "/" in voice:
            return _voice_file(voice)
        raise UsageError(
            f"unknown voice '{voice}'",
            hint="use one of: "
            + ", ".join(self.voices())
            + " (or map more names in voice.tts.voices)",
        )

    def check_voice(self, voice: str | None) -> None:
        self._voice(self._pick(voice))  # loads (and warms) it: a bad file fails here

    def stream(
        self, text: str, *, voice: str | None = None, speed: float | None = None
    ) -> Iterator[Samples]:
        if not text.strip():
            return
        piper = self._voice(self._pick(voice))
        rate = self.speed * (speed or 1.0)
        config = self._config_cls(
            length_scale=(piper.config.length_scale or 1.0) / max(rate, 0.05),
            noise_scale=self.noise_scale,
            noise_w_scale=self.noise_w,
            volume=0.9,  # Piper peak-normalises each sentence; leave headroom for encoders
        )
        for chunk in piper.synthesize(text, config):
            samples = np.asarray(chunk.audio_float_array, dtype=np.float32)
            yield resample(samples, int(chunk.sample_rate), self.rate)

    def synthesize(self, text: str) -> Clip:
        parts = list(self.stream(text))
        samples = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
        return Clip(samples, self.rate)


WARM_UP_TEXT = "Hello."


def _load(path: Path, threads: int) -> Any:
    """`PiperVoice.load`, with session options it does not expose (no spin-waiting)."""
    import json

    import onnxruntime
    from piper import PiperVoice
    from piper.config import PiperConfig

    with Path(str(path) + ".json").open(encoding="utf-8") as fh:
        config = PiperConfig.from_dict(json.load(fh))
    opts = onnxruntime.SessionOptions()
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    if threads > 0:
        opts.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(
        str(path), sess_options=opts, providers=["CPUExecutionProvider"]
    )
    return PiperVoice(session=session, config=config)


def _warm_up(voice: Any, config_cls: Any) -> None:
    for _ in voice.synthesize(WARM_UP_TEXT, config_cls(volume=0.9)):
        pass
