"""`cozy serve --webrtc`: a FastRTC `Stream` (ReplyOnPause, send-receive audio) at `/rtc`.

Optional extra `webrtc` (`fastrtc>=0.0.34`). FastRTC's own VAD, STT and TTS would be
downloaded from a hub; cozy injects its own instead: the pause model is cozy's VAD
(Silero ONNX / webrtcvad from the voice engine's options), speech to text and text to
speech are the voice engine, and the answer is an orchestrator turn (personality,
context, tools, persistence) in one cozy session per WebRTC connection. Gradio's
telemetry is off. The offer endpoint (`POST /rtc/webrtc/offer`) sits behind the
server's auth like every API route; turns are stored for the server's local user.
"""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from cozy.core.errors import MissingExtraError

if TYPE_CHECKING:
    from cozy.runtime import Runtime

OUTPUT_RATE = 24_000


def _telemetry_off() -> None:
    for key, value in {
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
        "DO_NOT_TRACK": "1",
    }.items():
        os.environ.setdefault(key, value)


class CozyPauseModel:
    """FastRTC's `PauseDetectionModel` on cozy's VAD: seconds of speech in a chunk."""

    def __init__(self, new_vad: Callable[[], Any]) -> None:
        self.new_vad = new_vad  # the voice engine's (its configured VAD)
        self._local = threading.local()  # VAD state is per thread (per connection worker)

    def _vad(self) -> Any:
        if getattr(self._local, "vad", None) is None:
            self._local.vad = self.new_vad()
        return self._local.vad

    def warmup(self) -> None:
        self._vad()

    def vad(self, audio: tuple[int, Any], options: Any) -> tuple[float, list[dict[str, int]]]:
        from cozy.engines.voice.audio import STT_RATE, resample

        rate, data = audio
        samples = _mono_float(data)
        at16 = resample(samples, int(rate), STT_RATE) if rate != STT_RATE else samples
        vad = self._vad()
        vad.reset()
        threshold = float(getattr(options, "threshold", 0.5) or 0.5)
        n, speech, chunks = vad.frame, 0, []
        for start in range(0, len(at16) - n + 1, n):
            if vad.prob(at16[start : start + n]) >= threshold:
                speech += n
                chunks.append(
                    {"start": start * rate // STT_RATE, "end": (start + n) * rate // STT_RATE}
                )
        return speech / STT_RATE, chunks


def _mono_float(data: Any) -> Any:
    arr = np.asarray(data)
    if arr.ndim == 2:
        arr = arr.mean(axis=0) if arr.shape[0] < arr.shape[1] else arr.mean(axis=1)
    if arr.dtype == np.int16:
        return (arr.astype(np.float32) / 32768.0).astype(np.float32)
    return arr.astype(np.float32)


def make_reply(
    get_runtime: Callable[[], Runtime], voices: dict[str, str] | None = None
) -> Callable[..., AsyncIterator[Any]]:
    """The turn handler; `voices` holds each connection's chosen voice (by webrtc_id)."""
    sessions: dict[str, str] = {}
    chosen = voices if voices is not None else {}

    async def reply(audio: tuple[int, Any]) -> AsyncIterator[tuple[int, Any]]:
        from fastrtc.utils import get_current_context

        from cozy.core.events import Started, TextDelta
        from cozy.core.orchestrator import ChatRequest
        from cozy.core.types import Caller
        from cozy.engines.capabilities import TranscribesClips
        from cozy.engines.voice.audio import Clip, from_pcm16

        runtime = get_runtime()
        engine = await runtime.engine("voice")
        if not isinstance(engine, TranscribesClips):
            return
        rate, data = audio
        text = (await engine.transcribe_clip(Clip(_mono_float(data), int(rate)))).strip()
        if not text:
            return
        try:
            key = get_current_context().webrtc_id
        except RuntimeError:
            key = "default"
        caller = Caller(user_id=runtime.settings.user, role="admin", face="server")
        events = runtime.orchestrator.run(
            ChatRequest(prompt=text, caller=caller, session=sessions.get(key, "new"))
        )

        async def deltas() -> AsyncIterator[str]:
            try:
                async for event in events:
                    if isinstance(event, Started):
                        sessions[key] = event.session_id
                    elif isinstance(event, TextDelta) and event.text:
                        yield event.text
            finally:
                await events.aclose()

        async for pcm in engine.speak_stream(deltas(), voice=chosen.get(key)):
            samples = from_pcm16(pcm)
            if engine.output_rate != OUTPUT_RATE:
                from cozy.engines.voice.audio import resample

                samples = resample(samples, engine.output_rate, OUTPUT_RATE)
            yield OUTPUT_RATE, (np.clip(samples, -1, 1) * 32767).astype(np.int16).reshape(1, -1)

    return reply


def build_stream(
    get_runtime: Callable[[], Runtime],
    new_vad: Callable[[], Any],
    voices: dict[str, str] | None = None,
) -> Any:
    """ReplyOnPause on cozy's VAD/STT/TTS/orchestrator; raises MissingExtraError without it."""
    _telemetry_off()
    try:
        from fastrtc import AlgoOptions, ReplyOnPause, Stream
    except ImportError as exc:
        raise MissingExtraError("webrtc", "WebRTC voice (fastrtc)") from exc
    handler = ReplyOnPause(
        make_reply(get_runtime, voices),
        algo_options=AlgoOptions(
            audio_chunk_duration=0.5, started_talking_threshold=0.2, speech_threshold=0.1
        ),
        model=CozyPauseModel(new_vad),
        can_interrupt=True,
        output_sample_rate=OUTPUT_RATE,
    )
    return Stream(handler, modality="audio", mode="send-receive", verbose=False)


def webrtc_handlers() -> list[Any]:
    """The `/rtc` mount (FastRTC's routes on a FastAPI sub-app), for the API router."""
    from litestar.handlers import asgi

    holder: dict[str, Any] = {}
    voices: dict[str, str] = {}  # webrtc_id -> the voice its offer asked for

    def runtime() -> Runtime:
        rt: Runtime = holder["runtime"]
        return rt

    @asgi("/rtc", is_mount=True)
    async def rtc(scope: Any, receive: Any, send: Any) -> None:
        if "sub" not in holder:
            from fastapi import FastAPI

            from cozy.engines.capabilities import TranscribesClips
            from cozy.engines.voice.vad import make_vad

            holder["runtime"] = scope["app"].state.services.runtime
            engine = await holder["runtime"].engine("voice")
            new_vad = engine.new_vad if isinstance(engine, TranscribesClips) else make_vad
            stream = build_stream(runtime, new_vad, voices)
            holder["sub"] = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
            stream.mount(holder["sub"])
        # Litestar hands the mount the path below /rtc with a trailing slash added
        path = scope["path"].rstrip("/") or "/"
        if path.endswith("/webrtc/offer") and scope.get("method") == "POST":
            receive = await _take_voice(runtime(), receive, send, voices)
            if receive is None:
                return
        await holder["sub"]({**scope, "path": path, "root_path": ""}, receive, send)

    return [rtc]


MAX_CONNECTIONS_KEPT = 1000


async def _take_voice(
    runtime: Runtime, receive: Any, send: Any, voices: dict[str, str]
) -> Any | None:
    """Read the offer body for its optional `voice` (FastRTC ignores fields it does not
    know): an unknown voice is a 400 before any connection is made; a known one is kept
    for that connection's answers. Returns a `receive` that replays the body."""
    import json

    from cozy.core.errors import CozyError
    from cozy.engines.base import VoiceEngine
    from cozy.server.voices import client_voice

    chunks: list[bytes] = []
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return None  # the client went away
        chunks.append(message.get("body", b""))
        more = bool(message.get("more_body"))
    body = b"".join(chunks)
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    voice = data.get("voice") if isinstance(data, dict) else None
    if isinstance(voice, str) and voice and isinstance(data, dict):
        engine = await runtime.engine("voice")
        try:
            client_voice(voice)
            if isinstance(engine, VoiceEngine):
                await engine.check_voice(voice)
        except CozyError as exc:
            payload = json.dumps({"error": {**exc.to_dict(), "param": "voice"}}).encode()
            await send({"type": "http.response.start", "status": exc.http_status,
                        "headers": [(b"content-type", b"application/json")]})  # fmt: skip
            await send({"type": "http.response.body", "body": payload})
            return None
        while len(voices) >= MAX_CONNECTIONS_KEPT:
            voices.pop(next(iter(voices)))
        voices[str(data.get("webrtc_id", ""))] = voice
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return dict(await receive())

    return replay
