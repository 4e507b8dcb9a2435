"""faster-whisper (CTranslate2 Whisper): the default offline recogniser (its options:
`WhisperOptions`; `model: base` is the packaged whisper-base, assembled once and hash
verified).

The model is loaded once per engine and shared by every stream (CTranslate2 queues
concurrent calls itself).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cozy.core.errors import ConfigError, EngineError, MissingExtraError
from cozy.engines.transcript import Segment, Transcript, Word
from cozy.engines.voice.audio import STT_RATE
from cozy.engines.voice.options import WhisperOptions
from cozy.engines.voice.stt import STT

if TYPE_CHECKING:
    from cozy.engines.voice.audio import Samples

PACKAGED = {"base": "whisper-base", "whisper-base": "whisper-base"}


def _language(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip().lower()
    return None if text in ("", "auto") else text


def resolve_model_dir(options: WhisperOptions) -> Path:
    """The model directory: `model_path`, else the packaged model named by `model`."""
    if options.model_path:
        path = Path(options.model_path).expanduser()
        if not (path / "model.bin").is_file():
            raise EngineError(
                f"no faster-whisper model at {path} (model.bin missing)",
                hint="set voice.stt.model_path to a CTranslate2 Whisper model directory",
            )
        return path
    name = options.model
    if name not in PACKAGED:
        raise ConfigError(
            f"voice.stt.model '{name}' is not a packaged Whisper model",
            hint="use `model: base`, or set voice.stt.model_path to a CTranslate2 Whisper "
            "directory",
        )
    from cozy.engines.voice.model_files import assemble

    return assemble()


class FasterWhisperSTT(STT):
    name = "faster-whisper"

    def __init__(self, options: WhisperOptions | Mapping[str, Any] | None = None) -> None:
        o = WhisperOptions.of(options or {}, "voice.stt")
        try:
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise MissingExtraError("voice", "the faster-whisper recogniser") from exc
        self.model_dir = resolve_model_dir(o)
        self.language = _language(o.language)
        self.beam_size = o.beam_size
        try:
            self._model = WhisperModel(
                str(self.model_dir),
                device=o.device,
                compute_type=o.compute_type,
                cpu_threads=o.cpu_threads,
                local_files_only=True,
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise EngineError(
                f"faster-whisper could not load {self.model_dir}: {exc}",
                hint="check voice.stt.model_path / compute_type (int8 on CPU)",
            ) from exc

    def transcribe(self, samples: Samples) -> str:
        return self.transcribe_detailed(samples).text

    def transcribe_detailed(
        self,
        samples: Samples,
        *,
        language: str | None = None,
        prompt: str | None = None,
        words: bool = False,
    ) -> Transcript:
        duration = len(samples) / STT_RATE
        if len(samples) == 0:
            return Transcript("", 0.0, _language(language) or self.language)
        segments, info = self._model.transcribe(
            samples,
            language=_language(language) or self.language,
            beam_size=self.beam_size,
            initial_prompt=prompt or None,
            word_timestamps=words,
            vad_filter=False,  # cozy's own VAD already cut the utterance
            condition_on_previous_text=False,  # avoids repeated-phrase loops on long clips
        )
        out: list[Segment] = []
        for seg in segments:  # a generator: decoding happens here
            out.append(
                Segment(
                    id=len(out),
                    start=round(float(seg.start), 3),
                    end=round(float(seg.end), 3),
                    text=seg.text.strip(),
                    words=[
                        Word(
                            w.word.strip(),
                            round(float(w.start), 3),
                            round(float(w.end), 3),
                            round(float(w.probability), 4),
                        )
                        for w in (seg.words or [])
                    ],
                    avg_logprob=float(seg.avg_logprob),
                    no_speech_prob=float(seg.no_speech_prob),
                    temperature=float(seg.temperature or 0.0),
                    compression_ratio=float(seg.compression_ratio),
                )
            )
        text = " ".join(s.text for s in out if s.text).strip()
        return Transcript(text, duration, info.language, out)
