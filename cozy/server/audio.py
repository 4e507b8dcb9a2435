"""Audio routes: OpenAI-compatible transcriptions/speech, plus cozy's /v1/audio/stt and /tts.

- `POST /v1/audio/transcriptions`: multipart `file` (WAV/FLAC/OGG/MP3), `response_format`
  json | text | verbose_json | srt | vtt, `timestamp_granularities[]` segment | word,
  `language`, `prompt`.
- `POST /v1/audio/speech`: JSON `{input, voice, response_format, speed}`; mp3 (default),
  opus, aac, flac, wav or pcm (16-bit mono at the engine's rate, 24 kHz by default),
  streamed as it is synthesised; OpenAI's voice names map to the configured voices.
- `POST /v1/audio/stt`: an audio body (a file, or raw PCM with `?sample_rate=`) → text.
- `WS /v1/audio/stt`: binary PCM16 frames in (`?sample_rate=16000&vad=true`),
  JSON events out (`speech_started`, `partial`, `final`); send the text "end" to finish.
- `POST /v1/audio/tts`: JSON `{input, format}` → WAV, or SSE with `"stream": true`:
  `event: audio` frames (base64 PCM16) then `event: done`.

Everything goes through the voice engine (`runtime.engine("voice")`); this module
only decodes uploads and shapes responses.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from litestar import Controller, Request, Response, WebSocket, post, websocket
from litestar.response import Stream
from pydantic import BaseModel, Field

from cozy.core.errors import EngineError, EngineTimeout, UsageError
from cozy.engines.base import VoiceEngine
from cozy.engines.voice.audio import Clip, decode, decode_pcm16, wav_header
from cozy.engines.voice.codecs import MEDIA_TYPES, SpeechEncoder
from cozy.server import transcripts
from cozy.server.deps import services, until_disconnect
from cozy.server.realtime import DenyBeforeUpgrade
from cozy.server.responses import media_operation
from cozy.server.voices import client_voice

SPEECH_FORMATS = tuple(MEDIA_TYPES)


class VoiceUnavailable(EngineError):
    http_status = 503
    code = "voice_unavailable"


class SpeechRequest(BaseModel):
    input: str = Field(min_length=1, max_length=8192)
    model: str = "cozy-tts"
    voice: str | None = None
    response_format: str = "mp3"  # OpenAI's default
    speed: float | None = Field(default=None, ge=0.25, le=4.0)
    instructions: str | None = None  # gpt-4o-mini-tts steering: the offline voices ignore it
    stream_format: Literal["audio", "sse"] = "audio"


class TTSRequest(BaseModel):
    input: str = Field(min_length=1, max_length=8192)
    format: Literal["wav", "pcm"] = "wav"
    stream: bool = False


async def _engine(request: Request[Any, Any, Any] | WebSocket[Any, Any, Any]) -> VoiceEngine:
    svc = request.app.state.services
    engine = await svc.runtime.engine("voice")
    if not isinstance(engine, VoiceEngine):
        raise VoiceUnavailable(
            "the voice engine is off on this server",
            hint="set `voice: {provider: local}` in the server's engines.yaml",
        )
    return engine


async def _transcribe(engine: VoiceEngine, clip: Clip) -> str:
    from cozy.engines.capabilities import TranscribesClips

    if isinstance(engine, TranscribesClips):
        return await engine.transcribe_clip(clip)
    return await engine.transcribe(clip.pcm16(), clip.rate)


async def _form_file(request: Request[Any, Any, Any]) -> tuple[bytes, dict[str, Any]]:
    form = await request.form()
    upload = form.get("file")
    if upload is None or not hasattr(upload, "read"):
        raise UsageError(
            "the request has no audio file",
            hint="send multipart/form-data with the audio in the `file` field",
        )
    data = await upload.read()
    fields: dict[str, Any] = {k: v for k, v in form.items() if k != "file" and isinstance(v, str)}
    getall = getattr(form, "getall", None)
    if getall is not None:  # arrays arrive as repeated `name[]` fields
        fields["timestamp_granularities"] = [
            str(v) for v in getall("timestamp_granularities[]", [])
        ] + [str(v) for v in getall("timestamp_granularities", [])]
    return data, fields


def _granularities(fields: dict[str, Any], fmt: str) -> set[str]:
    wanted = {g.strip() for g in fields.get("timestamp_granularities") or [] if g.strip()}
    unknown = wanted - set(transcripts.GRANULARITIES)
    if unknown:
        raise UsageError(
            f"timestamp_granularities {sorted(unknown)} are not supported",
            hint="use segment and/or word",
        )
    if wanted and fmt != "verbose_json":
        raise UsageError(
            "timestamp_granularities need response_format=verbose_json",
            hint="set response_format to verbose_json",
        )
    return wanted


async def _text_once(text: str) -> AsyncIterator[str]:
    yield text


async def _speech_stream(
    engine: VoiceEngine, data: SpeechRequest, encoder: SpeechEncoder
) -> AsyncIterator[bytes]:
    """Encoded speech, sentence by sentence (the encoder runs in a thread: mp3/aac are
    a few ms a sentence, but never on the event loop)."""
    import asyncio

    try:
        speech = engine.speak_stream(_text_once(data.input), voice=data.voice, speed=data.speed)
        async for pcm in speech:
            out = await asyncio.to_thread(encoder.encode, pcm)
            if out:
                yield out
        tail = await asyncio.to_thread(encoder.finish)
        if tail:
            yield tail
    finally:
        encoder.close()


class AudioController(Controller):
    path = "/v1/audio"
    tags = ["audio"]  # noqa: RUF012 - Litestar declares it as an instance attribute
    # the WebSocket (/stt) refuses a bad key with the same 401 JSON as every route
    middleware = [DenyBeforeUpgrade]  # noqa: RUF012

    @post("/transcriptions", status_code=200)
    async def transcriptions(self, request: Request[Any, Any, Any]) -> Response[Any]:
        data, fields = await _form_file(request)
        fmt = fields.get("response_format", "json")
        if fmt not in transcripts.RESPONSE_FORMATS:
            raise UsageError(
                f"response_format '{fmt}' is not supported",
                hint="use " + ", ".join(transcripts.RESPONSE_FORMATS),
            )
        granularities = _granularities(fields, fmt)
        engine = await _engine(request)
        clip = decode(data, what="uploaded audio")
        result = await engine.transcribe_detailed(
            clip.pcm16(),
            clip.rate,
            language=fields.get("language") or None,
            prompt=fields.get("prompt") or None,
            words="word" in granularities,
        )
        if fmt == "text":
            return Response(result.text + "\n", media_type="text/plain")
        if fmt == "srt":
            return Response(transcripts.srt(result), media_type="text/plain")
        if fmt == "vtt":
            return Response(transcripts.vtt(result), media_type="text/vtt")
        if fmt == "json":
            usage = {"type": "duration", "seconds": round(result.duration)}
            return Response({"text": result.text, "usage": usage})
        return Response(transcripts.verbose_json(result, granularities))

    @post(
        "/speech",
        status_code=200,
        operation_class=media_operation(*dict.fromkeys(MEDIA_TYPES.values())),
    )
    async def speech(self, request: Request[Any, Any, Any], data: SpeechRequest) -> Stream:
        fmt = data.response_format
        if fmt not in SPEECH_FORMATS:
            raise UsageError(
                f"response_format '{fmt}' is not supported",
                hint="use " + ", ".join(SPEECH_FORMATS) + " (pcm: 16-bit mono, see the "
                "X-Sample-Rate header)",
            )
        if data.stream_format == "sse":
            raise UsageError(
                "stream_format=sse is not supported on /v1/audio/speech",
                hint="use stream_format=audio, or POST /v1/audio/tts with stream=true for SSE",
            )
        engine = await _engine(request)
        client_voice(data.voice)
        await engine.check_voice(data.voice)  # an unknown voice is a 400, before streaming
        encoder = SpeechEncoder(fmt, engine.output_rate)
        return Stream(
            _speech_stream(engine, data, encoder),
            media_type=encoder.media_type,
            headers={"X-Sample-Rate": str(engine.output_rate)},
        )

    @post("/stt", status_code=200)
    async def stt(self, request: Request[Any, Any, Any]) -> dict[str, Any]:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("multipart/form-data"):
            data, _ = await _form_file(request)
        else:
            data = await request.body()
        engine = await _engine(request)
        rate = request.query_params.get("sample_rate")
        if ctype.startswith(("audio/pcm", "audio/l16")) or rate:
            try:
                clip = decode_pcm16(data, int(rate or 16000))
            except ValueError as exc:
                raise UsageError(
                    "sample_rate must be an integer", hint="e.g. ?sample_rate=16000"
                ) from exc
        else:
            clip = decode(data, what="uploaded audio")
        started = time.perf_counter()
        text = await _transcribe(engine, clip)
        elapsed = time.perf_counter() - started
        return {
            "text": text,
            "duration": round(clip.seconds, 3),
            "sample_rate": clip.rate,
            "processing_seconds": round(elapsed, 4),
            "rtf": round(elapsed / clip.seconds, 4) if clip.seconds else None,
        }

    @post(
        "/tts",
        status_code=200,
        operation_class=media_operation("audio/wav", "audio/pcm", "text/event-stream"),
    )
    async def tts(
        self, request: Request[Any, Any, Any], data: TTSRequest
    ) -> Response[Any] | Stream:
        engine = await _engine(request)
        headers = {"X-Sample-Rate": str(engine.output_rate)}
        if data.stream:
            return Stream(
                _sse_audio(engine, data.input),
                media_type="text/event-stream",
                headers={**headers, "Cache-Control": "no-cache"},
            )
        pcm = await until_disconnect(request, _synthesise(engine, data.input, request))
        if data.format == "pcm":
            return Response(pcm, media_type="audio/pcm", headers=headers)
        return Response(
            wav_header(engine.output_rate, len(pcm)) + pcm, media_type="audio/wav", headers=headers
        )

    @websocket("/stt")
    async def stt_stream(self, socket: WebSocket[Any, Any, Any]) -> None:
        await socket.accept()
        try:
            engine = await _engine(socket)
            rate = int(socket.query_params.get("sample_rate", "16000"))
            use_vad = socket.query_params.get("vad", "true").lower() not in ("0", "false", "no")
            session = await engine.create_realtime_session(sample_rate=rate, vad=use_vad)
        except (UsageError, EngineError, ValueError, NotImplementedError) as exc:
            await socket.send_json({"type": "error", "message": str(exc)})
            await socket.close(code=1008)
            return
        from cozy.server.stt_socket import serve

        try:
            await serve(socket, session, rate)
        finally:
            await session.close()


async def _synthesise(engine: VoiceEngine, text: str, request: Request[Any, Any, Any]) -> bytes:
    """The whole answer of a non-streamed /tts, within the server's speech deadline: a
    neural voice synthesises long or unusual text (every symbol spelt out) for minutes,
    and the client waits for the first byte until all of it is done."""
    limit = services(request).server.speech_timeout
    chunks: list[bytes] = []
    try:
        async with asyncio.timeout(limit):
            async for chunk in engine.speak_stream(_text_once(text)):
                chunks.append(chunk)
    except TimeoutError:
        done = sum(len(c) for c in chunks) / 2 / engine.output_rate
        raise EngineTimeout(
            f"synthesising {len(text):,} characters took longer than {limit:g}s "
            f"({done:.1f}s of audio done)",
            hint="send stream=true to receive the audio as it is made, send shorter text, "
            "or raise COZY_SERVER_SPEECH_TIMEOUT",
        ) from None
    return b"".join(chunks)


async def _sse_audio(engine: VoiceEngine, text: str) -> AsyncIterator[bytes]:
    samples = 0
    started = time.perf_counter()
    try:
        async for pcm in engine.speak_stream(_text_once(text)):
            samples += len(pcm) // 2
            frame = {"audio": base64.b64encode(pcm).decode(), "sample_rate": engine.output_rate}
            yield f"event: audio\ndata: {json.dumps(frame)}\n\n".encode()
        done = {
            "duration": round(samples / engine.output_rate, 3),
            "seconds": round(time.perf_counter() - started, 4),
        }
        yield f"event: done\ndata: {json.dumps(done)}\n\n".encode()
    except (UsageError, EngineError) as exc:
        yield f"event: error\ndata: {json.dumps({'message': str(exc)})}\n\n".encode()
