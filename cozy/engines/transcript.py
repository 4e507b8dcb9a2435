"""The records of a transcription: what `VoiceEngine` (engines/base.py) answers."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class TranscriptEvent:
    """A streaming transcription result: partials while audio arrives, then one final."""

    text: str
    final: bool = False
    start: float | None = None  # seconds into the stream, when the provider knows
    end: float | None = None


@dataclass(slots=True)
class Word:
    word: str
    start: float
    end: float
    probability: float | None = None


@dataclass(slots=True)
class Segment:
    id: int
    start: float
    end: float
    text: str
    words: list[Word] = field(default_factory=list)
    avg_logprob: float | None = None
    no_speech_prob: float | None = None
    temperature: float | None = None
    compression_ratio: float | None = None


@dataclass(slots=True)
class Transcript:
    """A whole transcription: text, language, duration, timed segments (and words)."""

    text: str
    duration: float
    language: str | None = None
    segments: list[Segment] = field(default_factory=list)
