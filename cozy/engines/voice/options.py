"""The `voice:` section of engines.yaml as Options models, one per STT/TTS/VAD provider.

`stt` and `tts` are unions tagged by their `provider` key (the default provider when it
is left out), so a misspelt option of, say, Piper is refused at load with file:line and
Piper's allowed keys, like every other engine option. Kept free of the providers' own
imports: the runtime validates engines.yaml before any model is loaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import Discriminator, Field, Tag

from cozy.engines.base import EngineOptions
from cozy.engines.openai_compat import EndpointOptions

PACKAGED_VOICE = "en_US-joe-medium"
STTName = Literal["faster-whisper", "pocketsphinx", "openai"]
TTSName = Literal["piper", "espeak", "openai"]


class WhisperOptions(EngineOptions):
    provider: Literal["faster-whisper"] = "faster-whisper"
    fallback: STTName | Literal["none"] | None = None  # default: pocketsphinx when packaged
    model: str = "base"  # the packaged whisper-base
    model_path: str | None = None  # any CTranslate2 Whisper directory (wins over model)
    language: str | None = None  # None/auto: detected; an ISO code skips detection
    beam_size: int = Field(default=1, ge=1)  # greedy measured as accurate as 5, faster
    compute_type: str = "int8"  # CPU; float16 on a GPU
    device: str = "cpu"
    cpu_threads: int = Field(default=0, ge=0)  # 0: CTranslate2's default


class SphinxOptions(EngineOptions):
    provider: Literal["pocketsphinx"] = "pocketsphinx"
    fallback: STTName | Literal["none"] | None = None
    model_dir: str | None = None  # hmm/lm/dict directory (default: the bundled en-us)
    grammar: list[str] | str | None = None  # recognise only these phrases, exactly
    jsgf_file: str | None = None
    keyphrase: str | None = None  # spot one phrase
    bestpath: bool = False  # lattice rescoring: measured worse on short commands
    # pruning measured to halve decode time with the same hypotheses (bench_voice.py)
    maxhmmpf: int = 3000
    maxwpf: int = 5
    decoder: dict[str, Any] = Field(default_factory=dict)  # any other pocketsphinx option
    final_pass: bool = True  # a stream's final text is a batch decode of the utterance


class OpenAISTTOptions(EndpointOptions):
    provider: Literal["openai"] = "openai"
    fallback: STTName | Literal["none"] | None = None
    model: str = "whisper-1"
    language: str | None = None
    timeout: float = Field(default=60, gt=0)
    max_retries: int = Field(default=1, ge=0)


class PiperOptions(EngineOptions):
    provider: Literal["piper"] = "piper"
    fallback: TTSName | Literal["none"] | None = None  # default: espeak when packaged
    model: str = PACKAGED_VOICE  # or a path to any Piper .onnx voice
    voices: dict[str, str] = Field(default_factory=dict)  # names (OpenAI's too) -> voices
    speed: float = Field(default=1.0, gt=0)
    noise_scale: float | None = None  # the voice's own defaults unless set
    noise_w: float | None = None
    threads: int = Field(default=1, ge=0)  # ONNX Runtime intra-op threads (0: per core)


class EspeakOptions(EngineOptions):
    provider: Literal["espeak"] = "espeak"
    fallback: TTSName | Literal["none"] | None = None
    binary: str = "espeak-ng"
    voice: str = "en-us"
    speed: int = Field(default=165, gt=0)  # words per minute
    pitch: int | None = Field(default=None, ge=0, le=99)
    timeout: float = Field(default=30, gt=0)  # seconds per sentence


class OpenAITTSOptions(EndpointOptions):
    provider: Literal["openai"] = "openai"
    fallback: TTSName | Literal["none"] | None = None
    model: str = "tts-1"
    voice: str = "alloy"
    speed: float | None = Field(default=None, gt=0)
    timeout: float = Field(default=60, gt=0)
    max_retries: int = Field(default=1, ge=0)


class VADOptions(EngineOptions):
    provider: Literal["auto", "silero", "silero-onnx", "webrtc"] = "auto"  # auto: silero
    model_path: str | None = None  # a Silero ONNX file (default: silero-vad's own)
    aggressiveness: int = Field(default=2, ge=0, le=3)  # webrtcvad's


def _tagged(default: str, kind: str, *members: type[EngineOptions]) -> Any:
    """The members as a union tagged by `provider` (`default` when the key is left out);
    pydantic then validates against the named provider's model only."""
    names = [str(m.model_fields["provider"].default) for m in members]

    def tag(value: Any) -> str | None:
        got = value.get("provider", default) if isinstance(value, dict) else None
        return str(got) if got is not None else getattr(value, "provider", None)

    return Annotated[
        Union[tuple(Annotated[m, Tag(n)] for m, n in zip(members, names, strict=True))],  # noqa: UP007
        Discriminator(
            tag,
            custom_error_type="unknown_provider",
            custom_error_message=f"unknown {kind} provider (use one of: {', '.join(names)})",
        ),
    ]


STTOptions = WhisperOptions | SphinxOptions | OpenAISTTOptions
TTSOptions = PiperOptions | EspeakOptions | OpenAITTSOptions
if TYPE_CHECKING:  # what the tagged unions validate to
    TaggedSTT = STTOptions
    TaggedTTS = TTSOptions
else:
    TaggedSTT = _tagged("faster-whisper", "STT", WhisperOptions, SphinxOptions, OpenAISTTOptions)
    TaggedTTS = _tagged("piper", "TTS", PiperOptions, EspeakOptions, OpenAITTSOptions)


class VoiceOptions(EngineOptions):
    stt: TaggedSTT | None = None
    tts: TaggedTTS | None = None
    vad: VADOptions | None = None
    silence_ms: float = 600  # trailing silence that ends an utterance
    # Whisper partials while the user speaks: re-decode the utterance so far after this
    # much new audio (one decode at a time); 0 turns them off
    partial_interval_ms: float = Field(default=1000, ge=0)
    output_rate: int = 24_000  # sample rate of what speak_stream yields


def stt_options(value: STTOptions | dict[str, Any] | None) -> STTOptions:
    """`voice.stt` as its provider's Options (a dict is checked, None is the default)."""
    opts = VoiceOptions.of({"stt": value}, "voice").stt
    return opts if opts is not None else WhisperOptions()


def tts_options(value: TTSOptions | dict[str, Any] | None) -> TTSOptions:
    opts = VoiceOptions.of({"tts": value}, "voice").tts
    return opts if opts is not None else PiperOptions()


def vad_options(value: VADOptions | dict[str, Any] | None) -> VADOptions:
    return VADOptions.of(value or {}, "voice.vad")
