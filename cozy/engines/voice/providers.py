"""Build the configured STT and TTS from engines.yaml, with the light fallbacks.

The defaults (faster-whisper, Piper) are imported lazily: their libraries are large,
and Piper is GPL-licensed and optional. Only the packaged defaults fall back to
pocketsphinx / espeak-ng; the reason is kept in `fallback_reason` for `cozy doctor`.
"""

from __future__ import annotations

from typing import Any

from cozy.core.errors import ConfigError, EngineError, MissingExtraError
from cozy.engines.voice.stt import STT, OpenAISTT, PocketSphinxSTT
from cozy.engines.voice.tts import TTS, EspeakTTS, OpenAITTS


def _stt_provider(name: str) -> type[STT]:
    if name == "faster-whisper":  # lazy: the module imports faster-whisper's types
        from cozy.engines.voice.stt_whisper import FasterWhisperSTT

        return FasterWhisperSTT
    cls = STT_PROVIDERS.get(name)
    if cls is None:
        raise ConfigError(
            f"unknown STT provider '{name}'",
            hint="use one of: faster-whisper, "
            + ", ".join(STT_PROVIDERS)
            + " in voice.stt.provider",
        )
    return cls


STT_PROVIDERS: dict[str, type[STT]] = {"pocketsphinx": PocketSphinxSTT, "openai": OpenAISTT}
DEFAULT_STT = "faster-whisper"


def make_stt(options: dict[str, Any] | None) -> STT:
    """The configured recogniser; when it cannot load, its `fallback` (pocketsphinx for
    faster-whisper, `fallback: none` to fail instead), with the reason kept in
    `fallback_reason` so `cozy doctor` and the health check can say so."""
    opts = dict(options or {})
    provider = str(opts.pop("provider", DEFAULT_STT))
    # only the packaged default falls back: an explicit model_path that is wrong must fail
    packaged = provider == DEFAULT_STT and not opts.get("model_path")
    default_fallback = "pocketsphinx" if packaged else "none"
    fallback = str(opts.pop("fallback", default_fallback) or "none")
    cls = _stt_provider(provider)
    try:
        return cls(opts)
    except (EngineError, MissingExtraError) as exc:
        if fallback == "none" or fallback == provider:
            raise
        try:
            stt = _stt_provider(fallback)({})
        except (EngineError, MissingExtraError):
            raise exc from None  # the configured provider's problem is the one to fix
        stt.fallback_reason = f"{provider} unavailable: {exc}" + (
            f" (fix: {exc.hint})" if exc.hint else ""
        )
        return stt


TTS_PROVIDERS: dict[str, type[TTS]] = {"espeak": EspeakTTS, "openai": OpenAITTS}
DEFAULT_TTS = "piper"


def _tts_provider(name: str) -> type[TTS]:
    if name == "piper":  # lazy: piper-tts is an optional (GPL) extra
        from cozy.engines.voice.tts_piper import PiperTTS

        return PiperTTS
    cls = TTS_PROVIDERS.get(name)
    if cls is None:
        raise ConfigError(
            f"unknown TTS provider '{name}'",
            hint="use one of: piper, " + ", ".join(TTS_PROVIDERS) + " in voice.tts.provider",
        )
    return cls


def make_tts(options: dict[str, Any] | None) -> TTS:
    """The configured voice; when it cannot load, its `fallback` (espeak for piper,
    `fallback: none` to fail instead), the reason kept in `fallback_reason`."""
    opts = dict(options or {})
    provider = str(opts.pop("provider", DEFAULT_TTS))
    # only the packaged default falls back: an explicit voice file that is wrong must fail
    packaged = provider == DEFAULT_TTS and opts.get("model") in (None, "en_US-joe-medium")
    fallback = str(opts.pop("fallback", "espeak" if packaged else "none") or "none")
    try:
        return _tts_provider(provider)(opts)
    except (EngineError, MissingExtraError) as exc:
        if fallback in ("none", provider):
            raise
        try:
            tts = _tts_provider(fallback)({})
        except (EngineError, MissingExtraError):
            raise exc from None
        tts.fallback_reason = f"{provider} unavailable: {exc}" + (
            f" (fix: {exc.hint})" if exc.hint else ""
        )
        return tts
