"""OpenAI Realtime protocol pieces for `/v1/realtime`: limits, session config, event shapes.

The wire format follows the GA Realtime API (the official `openai` client's
`client.realtime.connect()`); older beta clients (header `OpenAI-Beta: realtime=v1`)
get the beta event names (`response.audio.delta`, `conversation.item.created`, …),
and `session.update` accepts both the GA (`audio.input.format`, `output_modalities`)
and the beta (`input_audio_format`, `modalities`, `turn_detection`) session shapes.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass, field, fields, replace
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from cozy.core.errors import UsageError

RATE = 24_000  # the protocol's PCM16 rate
BYTES_PER_MS = RATE * 2 // 1000

BETA_NAMES = {
    "response.output_audio.delta": "response.audio.delta",
    "response.output_audio.done": "response.audio.done",
    "response.output_audio_transcript.delta": "response.audio_transcript.delta",
    "response.output_audio_transcript.done": "response.audio_transcript.done",
    "response.output_text.delta": "response.text.delta",
    "response.output_text.done": "response.text.done",
    "conversation.item.added": "conversation.item.created",
}
BETA_ONLY_GA = {"conversation.item.done"}  # no beta counterpart: not sent to beta clients

CLIENT_EVENTS = (
    "session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
    "conversation.item.create",
    "conversation.item.delete",
    "conversation.item.retrieve",
    "conversation.item.truncate",
    "response.create",
    "response.cancel",
    "output_audio_buffer.clear",
)


class RealtimeLimits(BaseSettings):
    """Per-connection limits; env `COZY_SERVER_REALTIME_*`."""

    model_config = SettingsConfigDict(env_prefix="COZY_SERVER_REALTIME_", extra="ignore")

    max_session_seconds: float = Field(default=1800.0, gt=0, description="then the server closes")
    max_buffer_seconds: float = Field(default=120.0, gt=0, description="uncommitted input audio")
    max_append_bytes: int = Field(default=15 * 1024 * 1024, gt=0, description="one append, base64")
    max_sessions: int = Field(default=64, ge=1, description="open realtime sessions per process")
    max_items: int = Field(default=500, ge=10, description="conversation items kept in memory")


class ProtocolError(UsageError):
    """A client event the server cannot act on: becomes an `error` event, the socket stays."""

    def __init__(
        self, message: str, *, code: str, param: str | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.code = code
        self.param = param
        self.event_id: str | None = None  # the client event it answers, when known


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


def parse_event(text: str) -> dict[str, Any]:
    try:
        event = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(
            f"the message is not valid JSON: {exc}",
            code="invalid_json",
            hint='send one JSON object per message, e.g. {"type": "response.create"}',
        ) from None
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        raise ProtocolError(
            "each message must be a JSON object with a string `type`",
            code="invalid_event",
            param="type",
        )
    if event["type"] not in CLIENT_EVENTS:
        err = ProtocolError(
            f"unknown event type '{event['type'][:80]}'",
            code="invalid_value",
            param="type",
            hint="supported: " + ", ".join(CLIENT_EVENTS),
        )
        err.event_id = event.get("event_id") if isinstance(event.get("event_id"), str) else None
        raise err
    return event


def decode_audio(data: Any, *, limit: int, param: str = "audio") -> bytes:
    """Base64 PCM16 (24 kHz mono) → bytes, with the reasons a client gets it wrong."""
    if not isinstance(data, str):
        raise ProtocolError("`audio` must be a base64 string", code="invalid_value", param=param)
    if len(data) > limit:
        raise ProtocolError(
            f"the audio in one event is {len(data)} bytes of base64, over the {limit}-byte limit",
            code="audio_too_large",
            param=param,
            hint="send the audio in smaller appends (e.g. 100 ms each)",
        )
    try:
        pcm = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError(
            "`audio` is not valid base64", code="invalid_value", param=param
        ) from None
    if pcm[:4] in (b"RIFF", b"fLaC", b"OggS", b"ID3\x03") or pcm[:2] == b"\xff\xfb":
        raise ProtocolError(
            "the audio is an encoded file, not raw PCM",
            code="invalid_audio_format",
            param=param,
            hint="send raw 16-bit little-endian mono PCM at 24000 Hz (audio/pcm)",
        )
    if len(pcm) % 2:
        raise ProtocolError(
            "the audio has an odd number of bytes: it is not 16-bit PCM",
            code="invalid_audio_format",
            param=param,
            hint="send raw 16-bit little-endian mono PCM at 24000 Hz (audio/pcm)",
        )
    return pcm


DEFAULT_VOICE = "cozy"  # the server's configured voice (voice.tts in engines.yaml)


def tts_voice(voice: str) -> str | None:
    """The session's voice as the voice engine names it (None: its configured default)."""
    return None if voice == DEFAULT_VOICE else voice


def _turn_detection_default() -> dict[str, Any]:
    return {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 500,
        "create_response": True,
        "interrupt_response": True,
        "idle_timeout_ms": None,
    }


@dataclass(slots=True)
class SessionConfig:
    model: str
    instructions: str = ""
    output_modalities: list[str] = field(default_factory=lambda: ["audio"])
    voice: str = DEFAULT_VOICE
    turn_detection: dict[str, Any] | None = field(default_factory=_turn_detection_default)
    transcription: dict[str, Any] | None = field(default_factory=lambda: {"model": "cozy-stt"})
    max_output_tokens: int | None = None
    id: str = field(default_factory=lambda: new_id("sess"))

    def wire(self) -> dict[str, Any]:
        pcm = {"type": "audio/pcm", "rate": RATE}
        return {
            "type": "realtime",
            "object": "realtime.session",
            "id": self.id,
            "model": self.model,
            "output_modalities": list(self.output_modalities),
            "instructions": self.instructions,
            "tools": [],
            "tool_choice": "auto",
            "max_output_tokens": self.max_output_tokens or "inf",
            "tracing": None,
            "truncation": "auto",
            "prompt": None,
            "include": None,
            "audio": {
                "input": {
                    "format": pcm,
                    "transcription": self.transcription,
                    "noise_reduction": None,
                    "turn_detection": self.turn_detection,
                },
                "output": {"format": pcm, "voice": self.voice, "speed": 1.0},
            },
        }

    def update(self, s: Any) -> None:  # noqa: C901 - one check per session field
        """Apply a `session.update` payload (GA or beta shape); checks before changing."""
        if not isinstance(s, dict):
            raise ProtocolError(
                "`session` must be an object", code="invalid_value", param="session"
            )
        new = replace(self)
        if "instructions" in s:
            if not isinstance(s["instructions"], str):
                raise _bad("session.instructions", "a string")
            new.instructions = s["instructions"]
        modalities = s.get("output_modalities", s.get("modalities"))
        if modalities is not None:
            new.output_modalities = _modalities(modalities, "session.output_modalities")
        audio = s.get("audio") or {}
        if not isinstance(audio, dict):
            raise _bad("session.audio", "an object")
        inp, out = audio.get("input") or {}, audio.get("output") or {}
        _check_format(inp.get("format", s.get("input_audio_format")), "session.audio.input.format")
        _check_format(
            out.get("format", s.get("output_audio_format")), "session.audio.output.format"
        )
        voice = out.get("voice", s.get("voice"))
        if voice is not None:
            new.voice = voice if isinstance(voice, str) else str(voice.get("id", DEFAULT_VOICE))
        for key, where in (("turn_detection", inp), ("turn_detection", s)):
            if key in where:
                new.turn_detection = _turn_detection(where[key])
                break
        for key, where in (("transcription", inp), ("input_audio_transcription", s)):
            if key in where:
                value = where[key]
                if value is not None and not isinstance(value, dict):
                    raise _bad(f"session.{key}", "an object or null")
                new.transcription = value
                break
        limit = s.get("max_output_tokens", s.get("max_response_output_tokens"))
        if limit is not None:
            if limit == "inf":
                new.max_output_tokens = None
            elif isinstance(limit, int) and 1 <= limit <= 4096:
                new.max_output_tokens = limit
            else:
                raise _bad("session.max_output_tokens", 'an integer 1-4096 or "inf"')
        for f in fields(self):
            setattr(self, f.name, getattr(new, f.name))


def _bad(param: str, what: str) -> ProtocolError:
    return ProtocolError(f"`{param}` must be {what}", code="invalid_value", param=param)


def _modalities(value: Any, param: str) -> list[str]:
    if not isinstance(value, list) or not value or any(m not in ("text", "audio") for m in value):
        raise _bad(param, '["audio"] or ["text"]')
    return ["audio"] if "audio" in value else ["text"]


def _check_format(fmt: Any, param: str) -> None:
    if fmt is None or fmt == "pcm16":
        return
    if isinstance(fmt, dict) and fmt.get("type", "audio/pcm") == "audio/pcm":
        if fmt.get("rate", RATE) == RATE:
            return
        raise ProtocolError(
            f"`{param}.rate` {fmt.get('rate')!r} is not supported",
            code="invalid_value",
            param=param,
            hint="use audio/pcm at 24000 Hz (resample on the client)",
        )
    shown = fmt.get("type") if isinstance(fmt, dict) else fmt
    raise ProtocolError(
        f"audio format {shown!r} is not supported",
        code="invalid_value",
        param=param,
        hint='use {"type": "audio/pcm", "rate": 24000} (16-bit mono PCM)',
    )


def _turn_detection(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _bad("session.audio.input.turn_detection", "an object or null")
    kind = value.get("type", "server_vad")
    if kind not in ("server_vad", "semantic_vad"):
        raise _bad("session.audio.input.turn_detection.type", '"server_vad" or null')
    td = {**_turn_detection_default(), **{k: v for k, v in value.items() if v is not None}}
    td["type"] = "server_vad"  # semantic_vad is served by the same VAD
    threshold, silence = td["threshold"], td["silence_duration_ms"]
    if not isinstance(threshold, (int, float)) or not 0.0 < threshold < 1.0:
        raise _bad("session.audio.input.turn_detection.threshold", "a number between 0 and 1")
    if not isinstance(silence, int) or not 50 <= silence <= 5000:
        raise _bad("session.audio.input.turn_detection.silence_duration_ms", "50-5000")
    if not isinstance(td["prefix_padding_ms"], int) or not 0 <= td["prefix_padding_ms"] <= 2000:
        raise _bad("session.audio.input.turn_detection.prefix_padding_ms", "0-2000")
    return td


def modalities_of(response: Any, default: list[str]) -> list[str]:
    if not isinstance(response, dict):
        return default
    value = response.get("output_modalities", response.get("modalities"))
    return default if value is None else _modalities(value, "response.output_modalities")


def error_event(exc: UsageError | Any, client_event_id: str | None = None) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {
            "type": getattr(exc, "error_type", "server_error"),
            "code": getattr(exc, "code", "server_error"),
            "message": str(exc),
            "param": getattr(exc, "param", None),
            "event_id": client_event_id or getattr(exc, "event_id", None),
        },
    }


def user_text(item: dict[str, Any]) -> str:
    parts = item.get("content") or []
    texts = [p.get("text") or p.get("transcript") or "" for p in parts if isinstance(p, dict)]
    return "\n".join(t for t in texts if t)
