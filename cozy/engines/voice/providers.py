"""Build the configured STT and TTS from engines.yaml, with the light fallbacks.

The defaults (faster-whisper, Piper) are imported lazily: their libraries are large,
and Piper is GPL-licensed and optional. Only the packaged defaults fall back to
pocketsphinx / espeak-ng; the reason is kept in `fallback_reason` for `cozy doctor`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from cozy.core.errors import EngineError, MissingExtraError
from cozy.engines.voice.options import (
    PACKAGED_VOICE,
    PiperOptions,
    STTOptions,
    TTSOptions,
    WhisperOptions,
    stt_options,
    tts_options,
)
from cozy.engines.voice.stt import STT, OpenAISTT, PocketSphinxSTT
from cozy.engines.voice.tts import TTS, EspeakTTS, OpenAITTS

P = TypeVar("P", STT, TTS)


def _stt_provider(name: str) -> type[STT]:
    if name == "faster-whisper":  # lazy: the module imports faster-whisper's types
        from cozy.engines.voice.stt_whisper import FasterWhisperSTT

        return FasterWhisperSTT
    return PocketSphinxSTT if name == "pocketsphinx" else OpenAISTT


def _tts_provider(name: str) -> type[TTS]:
    if name == "piper":  # lazy: piper-tts is an optional (GPL) extra
        from cozy.engines.voice.tts_piper import PiperTTS

        return PiperTTS
    return EspeakTTS if name == "espeak" else OpenAITTS


def make_stt(options: STTOptions | dict[str, Any] | None) -> STT:
    """The configured recogniser; when it cannot load, its `fallback` (pocketsphinx for
    faster-whisper, `fallback: none` to fail instead), with the reason kept in
    `fallback_reason` so `cozy doctor` and the health check can say so."""
    o = stt_options(options)
    # only the packaged default falls back: an explicit model_path that is wrong must fail
    packaged = isinstance(o, WhisperOptions) and not o.model_path
    return _with_fallback(o, "pocketsphinx" if packaged else "none", _stt_provider)


def make_tts(options: TTSOptions | dict[str, Any] | None) -> TTS:
    """The configured voice; when it cannot load, its `fallback` (espeak for piper,
    `fallback: none` to fail instead), the reason kept in `fallback_reason`."""
    o = tts_options(options)
    # only the packaged default falls back: an explicit voice file that is wrong must fail
    packaged = isinstance(o, PiperOptions) and o.model == PACKAGED_VOICE
    return _with_fallback(o, "espeak" if packaged else "none", _tts_provider)


def _with_fallback(
    o: STTOptions | TTSOptions, default: str, provider: Callable[[str], Callable[..., P]]
) -> P:
    fallback = (o.fallback or "none") if "fallback" in o.model_fields_set else default
    try:
        return provider(o.provider)(o)
    except (EngineError, MissingExtraError) as exc:
        if fallback in ("none", o.provider):
            raise
        try:
            part = provider(fallback)()
        except (EngineError, MissingExtraError):
            raise exc from None  # the configured provider's problem is the one to fix
        part.fallback_reason = f"{o.provider} unavailable: {exc}" + (
            f" (fix: {exc.hint})" if exc.hint else ""
        )
        return part
