"""Speech-to-text providers: pocketsphinx (fallback and command mode), OpenAI-compatible,
and the factory (faster-whisper, the default, lives in `stt_whisper.py`).

Providers are blocking and take 16 kHz mono float32; the voice engine runs them in
threads. `stream()` returns a session that takes chunks and gives partial results
where the provider supports them (pocketsphinx does; the others answer at the end).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cozy.core.errors import ConfigError, EngineError, MissingExtraError
from cozy.engines.transcript import Segment, Transcript
from cozy.engines.voice.audio import STT_RATE, encode_wav, to_pcm16
from cozy.engines.voice.options import OpenAISTTOptions, SphinxOptions

if TYPE_CHECKING:
    from cozy.engines.voice.audio import Samples


class STTStream:
    """A streaming utterance: `accept()` chunks, read `partial`, then `finish()`."""

    def __init__(self, stt: STT) -> None:
        self.stt = stt
        self._chunks: list[Samples] = []

    def accept(self, samples: Samples) -> str | None:
        """Feed 16 kHz audio; returns a new partial transcript when there is one."""
        self._chunks.append(samples)
        return None

    def finish(self) -> str:
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.float32)
        return self.stt.transcribe(audio)

    def close(self) -> None:
        """Release the session's resources (safe to call twice)."""


class STT(ABC):
    name: str = ""
    streams_partials: bool = False
    fallback_reason: str = ""  # set when this recogniser stands in for the configured one
    model_dir: Path | None = None  # where the model files are, for `cozy doctor`

    @abstractmethod
    def transcribe(self, samples: Samples) -> str: ...

    def transcribe_detailed(
        self,
        samples: Samples,
        *,
        language: str | None = None,
        prompt: str | None = None,
        words: bool = False,
    ) -> Transcript:
        """One segment by default; recognisers with timings (Whisper) give them all."""
        text = self.transcribe(samples)
        duration = len(samples) / STT_RATE
        return Transcript(text, duration, language, [Segment(0, 0.0, duration, text)])

    def stream(self) -> STTStream:
        return STTStream(self)

    def close(self) -> None:  # noqa: B027 - optional
        """Release models and clients."""


# --- pocketsphinx --------------------------------------------------------------


def _grammar_jsgf(phrases: list[str]) -> str:
    clean = [" ".join(p.lower().replace(";", " ").split()) for p in phrases if p.strip()]
    if not clean:
        raise ConfigError("voice.stt.grammar is empty", hint="list at least one phrase")
    return "#JSGF V1.0;\ngrammar cozy;\npublic <command> = " + " | ".join(clean) + ";\n"


class PocketSphinxSTT(STT):
    """CMU pocketsphinx with the en-US model bundled in its wheel (options: SphinxOptions):
    dictation, or only the phrases of a grammar, or spotting one keyphrase."""

    name = "pocketsphinx"
    streams_partials = True

    def __init__(self, options: SphinxOptions | Mapping[str, Any] | None = None) -> None:
        try:
            import pocketsphinx
        except ImportError as exc:
            raise MissingExtraError("voice", "speech recognition (pocketsphinx)") from exc
        self._ps = pocketsphinx
        self.opts = o = SphinxOptions.of(options or {}, "voice.stt")
        self._pool: list[Any] = []
        self._lock = threading.Lock()
        self.grammar = [o.grammar] if isinstance(o.grammar, str) else o.grammar
        decoder = self._new_decoder()  # load now: errors surface at startup
        self.cmn0 = decoder.get_cmn()  # the model's initial CMN: each stream starts from it
        self._release(decoder)

    def _config(self) -> dict[str, Any]:
        o = self.opts
        kw: dict[str, Any] = {"samprate": STT_RATE, "loglevel": "FATAL"}
        kw.update(bestpath=o.bestpath, maxhmmpf=o.maxhmmpf, maxwpf=o.maxwpf, **o.decoder)
        if o.model_dir:
            base = Path(o.model_dir).expanduser()
            files = {
                "hmm": base / "en-us",
                "lm": base / "en-us.lm.bin",
                "dict": base / "cmudict-en-us.dict",
            }
            for key, path in files.items():
                if not path.exists():
                    raise EngineError(
                        f"pocketsphinx model file missing: {path}",
                        hint="point voice.stt.model_dir at a pocketsphinx model directory "
                        "(or remove it to use the bundled en-us model)",
                    )
                kw[key] = str(path)
        return kw

    def _new_decoder(self) -> Any:
        try:
            decoder = self._ps.Decoder(**self._config())
        except (RuntimeError, ValueError) as exc:
            raise EngineError(
                f"pocketsphinx could not load its model: {exc}",
                hint="reinstall it with `uv pip install --force-reinstall pocketsphinx`",
            ) from exc
        o = self.opts
        try:
            if self.grammar:
                decoder.add_jsgf_string("cozy", _grammar_jsgf(self.grammar))
                decoder.activate_search("cozy")
            elif o.jsgf_file:
                decoder.add_jsgf_file("cozy", str(Path(o.jsgf_file).expanduser()))
                decoder.activate_search("cozy")
            elif o.keyphrase:
                decoder.add_keyphrase("cozy", o.keyphrase.lower())
                decoder.activate_search("cozy")
        except (RuntimeError, ValueError) as exc:
            raise ConfigError(
                f"pocketsphinx rejected the grammar/keyphrase: {exc}",
                hint="use words from the pronunciation dictionary in voice.stt.grammar",
            ) from exc
        return decoder

    def _acquire(self) -> Any:
        with self._lock:
            if self._pool:
                return self._pool.pop()
        return self._new_decoder()

    def _release(self, decoder: Any) -> None:
        with self._lock:
            if len(self._pool) < 4:
                self._pool.append(decoder)

    def transcribe(self, samples: Samples) -> str:
        if len(samples) == 0:
            return ""
        decoder = self._acquire()
        try:
            decoder.start_utt()
            decoder.process_raw(to_pcm16(samples), full_utt=True)
            decoder.end_utt()
            hyp = decoder.hyp()
            return str(hyp.hypstr).strip() if hyp is not None else ""
        finally:
            self._release(decoder)

    def stream(self) -> STTStream:
        return _SphinxStream(self)


class _SphinxStream(STTStream):
    def __init__(self, stt: PocketSphinxSTT) -> None:
        super().__init__(stt)
        self._owner = stt
        self._decoder: Any = stt._acquire()
        # live CMN adapts across utterances; batch decodes on pooled decoders would
        # otherwise leave it anywhere (digital silence drives it off: measured '' results)
        self._decoder.set_cmn(stt.cmn0)
        self._decoder.start_utt()
        self._last = ""
        self._open = True

    def accept(self, samples: Samples) -> str | None:
        if not self._open:
            raise EngineError("this transcription stream is already finished")
        self._chunks.append(samples)
        self._decoder.process_raw(to_pcm16(samples))
        hyp = self._decoder.hyp()
        text = str(hyp.hypstr).strip() if hyp is not None else ""
        if text and text != self._last:
            self._last = text
            return text
        return None

    def finish(self) -> str:
        """The final result is a batch decode of the whole utterance: live CMN makes the
        partials cheap but less accurate (measured 10/13 vs 13/13 on the command set)."""
        if not self._open:
            return self._last
        self._decoder.end_utt()
        hyp = self._decoder.hyp()
        live = str(hyp.hypstr).strip() if hyp is not None else ""
        self.close()
        if self._owner.opts.final_pass and self._chunks:
            self._last = self._owner.transcribe(np.concatenate(self._chunks))
        else:
            self._last = live
        return self._last

    def close(self) -> None:
        if self._open:
            self._open = False
            self._owner._release(self._decoder)


# --- OpenAI-compatible ----------------------------------------------------------


class OpenAISTT(STT):
    """Any OpenAI-compatible `/v1/audio/transcriptions` (OpenAI, a local Whisper server,
    another cozy)."""

    name = "openai"

    def __init__(self, options: OpenAISTTOptions | Mapping[str, Any] | None = None) -> None:
        from cozy.engines.openai_compat import sync_client

        o = OpenAISTTOptions.of(options or {}, "voice.stt")
        self.model, self.language = o.model, o.language
        self._client = sync_client(o, timeout=o.timeout, max_retries=o.max_retries)

    def transcribe(self, samples: Samples) -> str:
        from cozy.engines.openai_compat import voice_errors

        if len(samples) == 0:
            return ""
        kw: dict[str, Any] = {
            "model": self.model,
            "file": ("audio.wav", encode_wav(samples, STT_RATE)),
        }
        if self.language:
            kw["language"] = self.language
        check = "voice.stt.model and voice.stt.api_key"
        with voice_errors("transcription", self._client.base_url, "voice.stt", check):
            result = self._client.audio.transcriptions.create(**kw)
        return str(getattr(result, "text", result)).strip()

    def close(self) -> None:
        self._client.close()
