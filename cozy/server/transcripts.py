"""Transcription responses in OpenAI's shapes: json, text, verbose_json, srt, vtt.

Timed segments (and words, when asked for) come from the recogniser: Whisper gives
them; a recogniser without timings gives one segment spanning the clip.
"""

from __future__ import annotations

from typing import Any

from cozy.engines.transcript import Transcript

RESPONSE_FORMATS = ("json", "text", "verbose_json", "srt", "vtt")
GRANULARITIES = ("segment", "word")

# OpenAI's verbose_json names the language in English words; Whisper gives ISO codes.
LANGUAGE_NAMES = {
    "en": "english", "fr": "french", "de": "german", "es": "spanish", "it": "italian",
    "pt": "portuguese", "nl": "dutch", "pl": "polish", "ru": "russian", "uk": "ukrainian",
    "zh": "chinese", "ja": "japanese", "ko": "korean", "ar": "arabic", "hi": "hindi",
    "tr": "turkish", "sv": "swedish", "da": "danish", "no": "norwegian", "fi": "finnish",
    "cs": "czech", "el": "greek", "he": "hebrew", "id": "indonesian", "vi": "vietnamese",
}  # fmt: skip


def language_name(code: str | None) -> str:
    if not code:
        return "unknown"
    return LANGUAGE_NAMES.get(code, code)


def _stamp(seconds: float, sep: str) -> str:
    ms = max(0, round(seconds * 1000))
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{sep}{millis:03d}"


def srt(result: Transcript) -> str:
    blocks = []
    for i, seg in enumerate((s for s in result.segments if s.text), 1):
        span = f"{_stamp(seg.start, ',')} --> {_stamp(seg.end, ',')}"
        blocks.append(f"{i}\n{span}\n{seg.text}\n")
    return "\n".join(blocks)


def vtt(result: Transcript) -> str:
    cues = [
        f"{_stamp(s.start, '.')} --> {_stamp(s.end, '.')}\n{s.text}\n"
        for s in result.segments
        if s.text
    ]
    return "WEBVTT\n\n" + "\n".join(cues)


def verbose_json(result: Transcript, granularities: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "task": "transcribe",
        "language": language_name(result.language),
        "duration": round(result.duration, 3),
        "text": result.text,
    }
    if "segment" in granularities or not granularities:
        out["segments"] = [
            {
                "id": s.id,
                "seek": 0,
                "start": s.start,
                "end": s.end,
                "text": s.text,
                "tokens": [],
                "temperature": s.temperature if s.temperature is not None else 0.0,
                "avg_logprob": s.avg_logprob if s.avg_logprob is not None else 0.0,
                "compression_ratio": s.compression_ratio or 0.0,
                "no_speech_prob": s.no_speech_prob if s.no_speech_prob is not None else 0.0,
            }
            for s in result.segments
        ]
    if "word" in granularities:
        out["words"] = [
            {"word": w.word, "start": w.start, "end": w.end}
            for s in result.segments
            for w in s.words
        ]
    out["usage"] = {"type": "duration", "seconds": round(result.duration)}
    return out
