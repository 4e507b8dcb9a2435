"""The state of one `/v1/realtime` connection and the handler of each client event.

Input audio collects in a buffer (PCM16 24 kHz). With server VAD on, each append
runs through the `TurnDetector`: speech start → `input_audio_buffer.speech_started`
(and barge-in: an active response is cancelled first), speech stop → `speech_stopped`,
`committed`, the user item, its transcription, and a response. Transcriptions run
as tasks so the socket keeps reading (a barge-in is never stuck behind STT).
The conversation's turns live in one cozy session (created on the first answer).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from cozy.core.errors import CozyError, UsageError
from cozy.server.realtime_items import ConversationItems, PendingInput
from cozy.server.realtime_partials import PartialTranscripts
from cozy.server.realtime_protocol import (
    BYTES_PER_MS,
    RATE,
    ProtocolError,
    RealtimeLimits,
    SessionConfig,
    decode_audio,
    error_event,
    modalities_of,
    new_id,
    tts_voice,
)
from cozy.server.realtime_response import (
    ResponseRun,
    build_request,
    close_output,
    generate,
    open_output,
)
from cozy.server.realtime_transcribe import transcribe_clip
from cozy.server.realtime_vad import TurnDetector
from cozy.server.voices import client_voice

if TYPE_CHECKING:
    from cozy.engines.base import VoiceEngine
    from cozy.runtime import Runtime
    from cozy.server.auth import Principal

Send = Callable[[dict[str, Any]], Awaitable[None]]
MIN_COMMIT_MS = 100
NO_SPEECH = ProtocolError(
    "no speech was recognised in the input audio",
    code="no_speech",
    hint="speak closer to the microphone, or send text with conversation.item.create",
)


class RealtimeSession(ConversationItems):
    def __init__(
        self,
        *,
        runtime: Runtime,
        engine: VoiceEngine | None,
        principal: Principal,
        config: SessionConfig,
        personality: str | None,
        model: str | None,
        limits: RealtimeLimits,
        send: Send,
    ) -> None:
        self.runtime, self.engine, self.principal = runtime, engine, principal
        self.config, self.personality, self.model = config, personality, model
        self.limits, self.send = limits, send
        self.conversation_id = new_id("conv")
        self.buffer = bytearray()
        self.audio_ms = 0.0  # input audio received so far
        self.detector: TurnDetector | None = None
        self.speech_item: str | None = None
        self.items: dict[str, dict[str, Any]] = {}
        self.pending: list[PendingInput] = []
        self.system_items: list[str] = []
        self.response: ResponseRun | None = None
        self.cozy_session: str | None = None
        self.message_ids: dict[str, str] = {}  # assistant item id → stored message id
        self.tasks: set[asyncio.Task[Any]] = set()
        self.barge_in: list[float] = []  # seconds from speech detected to response.done
        self.partials = PartialTranscripts(engine, send, self.tasks)

    # --- dispatch -----------------------------------------------------------------
    async def handle(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        handler = getattr(self, "on_" + kind.replace(".", "_"))
        await handler(event)

    async def on_session_update(self, event: dict[str, Any]) -> None:
        before = self.config.turn_detection
        wanted = replace(self.config)
        wanted.update(event.get("session"))
        if wanted.voice != self.config.voice and self.engine is not None:
            try:  # an unknown voice is refused now, not at the first spoken answer
                client_voice(wanted.voice, "session.audio.output.voice")
                await self.engine.check_voice(tts_voice(wanted.voice))
            except UsageError as exc:
                raise ProtocolError(
                    exc.message,
                    code="invalid_value",
                    param="session.audio.output.voice",
                    hint=exc.hint,
                ) from None
        self.config.update(event.get("session"))
        if self.config.turn_detection != before:
            self.detector = None  # rebuilt with the new settings on the next append
        await self.send({"type": "session.updated", "session": self.config.wire()})

    async def on_input_audio_buffer_append(self, event: dict[str, Any]) -> None:
        pcm = decode_audio(event.get("audio"), limit=self.limits.max_append_bytes)
        cap = int(self.limits.max_buffer_seconds * RATE * 2)
        if len(self.buffer) + len(pcm) > cap:
            raise ProtocolError(
                f"the input audio buffer is full ({self.limits.max_buffer_seconds:g} s)",
                code="input_audio_buffer_full",
                hint="commit (input_audio_buffer.commit) or clear it, or turn on server VAD",
            )
        self.buffer += pcm
        self.audio_ms += len(pcm) / BYTES_PER_MS
        td = self.config.turn_detection
        if td is None or self.engine is None:
            return
        if self.detector is None:
            self.detector = await TurnDetector.create(
                self.engine, td, self.audio_ms - len(pcm) / BYTES_PER_MS
            )
        for kind, at_ms in await self.detector.push(pcm):
            if kind == "start":
                await self._speech_started(at_ms, td)
            else:
                await self._speech_stopped(at_ms, td)
        if self.detector.in_speech and self.speech_item is not None:
            self.partials.maybe_decode(
                self.speech_item, self.buffer, self.config.transcription, self.language()
            )
        if not self.detector.in_speech:  # keep only the padding that precedes speech
            keep = int((td["prefix_padding_ms"] + 200) * BYTES_PER_MS)
            if len(self.buffer) > keep:
                del self.buffer[: len(self.buffer) - keep]

    async def _speech_started(self, at_ms: int, td: dict[str, Any]) -> None:
        detected = time.perf_counter()
        run = self.response
        if run is not None and td.get("interrupt_response", True) and run.task is not None:
            run.task.cancel()  # silence first: no audio delta leaves after this point
        self.speech_item = new_id("item")
        await self.send(
            {
                "type": "input_audio_buffer.speech_started",
                "item_id": self.speech_item,
                "audio_start_ms": max(0, at_ms - td["prefix_padding_ms"]),
            }
        )
        if run is not None and td.get("interrupt_response", True):
            await self.cancel_response("turn_detected")
            self.barge_in.append(time.perf_counter() - detected)

    async def _speech_stopped(self, at_ms: int, td: dict[str, Any]) -> None:
        item_id = self.speech_item or new_id("item")
        self.speech_item = None
        await self.send(
            {"type": "input_audio_buffer.speech_stopped", "item_id": item_id, "audio_end_ms": at_ms}
        )
        if len(self.buffer) < MIN_COMMIT_MS * BYTES_PER_MS:
            return
        await self._commit(item_id)
        if td.get("create_response", True) and self.response is None:
            self._start_response({}, auto=True)

    async def on_input_audio_buffer_commit(self, event: dict[str, Any]) -> None:
        if len(self.buffer) < MIN_COMMIT_MS * BYTES_PER_MS:
            ms = len(self.buffer) / BYTES_PER_MS
            raise ProtocolError(
                f"buffer too small: expected at least {MIN_COMMIT_MS} ms of audio, got {ms:.0f} ms",
                code="input_audio_buffer_commit_empty",
                hint="append PCM16 24 kHz audio before committing",
            )
        await self._commit(self.speech_item or new_id("item"))
        self.speech_item = None
        if self.detector is not None:  # the turn is over: the VAD starts afresh
            self.detector = None

    async def on_input_audio_buffer_clear(self, event: dict[str, Any]) -> None:
        self.partials.stop()
        self.buffer.clear()
        self.detector = None
        self.speech_item = None
        await self.send({"type": "input_audio_buffer.cleared"})

    async def _commit(self, item_id: str) -> None:
        self.partials.stop()  # the completed transcript supersedes the partial ones
        pcm, self.buffer = bytes(self.buffer), bytearray()
        previous = self._last_item_id()
        await self.send(
            {
                "type": "input_audio_buffer.committed",
                "item_id": item_id,
                "previous_item_id": previous,
            }
        )
        item = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "role": "user",
            "status": "completed",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        await self._add_item(item, previous)
        self.pending.append(PendingInput(item_id, task=self._transcribe(item, pcm)))

    def _transcribe(self, item: dict[str, Any], pcm: bytes) -> asyncio.Task[str]:
        clip = transcribe_clip(self.engine, item, pcm, self.config, self.language, self.send)
        return self._spawn(clip)

    def language(self) -> str | None:
        """What the user speaks: the session's transcription language, else the
        personality's `voice.language`, else the recogniser's own setting (auto)."""
        wanted = (self.config.transcription or {}).get("language")
        if wanted:
            return str(wanted)
        try:
            pid = self.personality or self.runtime.orchestrator.default_personality
            return self.runtime.personalities.get(pid).voice.language
        except CozyError:
            return None

    # --- responses -------------------------------------------------------------------
    async def on_response_create(self, event: dict[str, Any]) -> None:
        if self.response is not None:
            raise ProtocolError(
                f"conversation already has an active response in progress: {self.response.id}",
                code="conversation_already_has_active_response",
                hint="wait for response.done or send response.cancel",
            )
        options = event.get("response") or {}
        modalities_of(options, self.config.output_modalities)  # reject bad values now
        if not self.pending:
            raise ProtocolError(
                "there is no new user input to answer",
                code="no_input",
                hint="commit input audio or add a user item with conversation.item.create first",
            )
        self._start_response(options, auto=False)

    async def on_response_cancel(self, event: dict[str, Any]) -> None:
        run = self.response
        wanted = event.get("response_id")
        if run is None or (wanted and wanted != run.id):
            raise ProtocolError(
                "there is no active response to cancel", code="response_cancel_not_active"
            )
        await self.cancel_response("client_cancelled")

    def _start_response(self, options: dict[str, Any], *, auto: bool) -> None:
        run = ResponseRun(
            modalities=modalities_of(options, self.config.output_modalities),
            conversation_id=self.conversation_id,
            voice=self.config.voice,
            max_output_tokens=self.config.max_output_tokens,
        )
        if run.audio and self.engine is None:
            run.modalities = ["text"]
        pending, self.pending = self.pending, []
        run.inputs = pending
        self.response = run
        run.task = asyncio.create_task(self._respond(run, pending, options, auto))

    async def _respond(
        self, run: ResponseRun, pending: list[PendingInput], options: dict[str, Any], auto: bool
    ) -> None:
        try:
            texts = [await p.result() for p in pending]
            prompt = "\n".join(t for t in texts if t.strip())
            if not prompt:
                self.response = None
                if not auto:
                    await self.send(error_event(NO_SPEECH))
                return
            await open_output(run, self.send, self._last_item_id())
            self.items[run.item_id] = run.item("in_progress")
            instructions = options.get("instructions")
            system = "\n\n".join(
                [
                    instructions if isinstance(instructions, str) else self.config.instructions,
                    *self.system_items,
                ]
            )
            request = build_request(
                prompt,
                caller=self.principal.caller(),
                session=self.cozy_session,
                personality=self.personality,
                model=self.model,
                instructions=system,
                max_tokens=run.max_output_tokens,
                request_id=run.id,
            )
            await generate(run, self.runtime, self.engine, request, self.send, self._bind)
        except asyncio.CancelledError:
            raise
        except CozyError as exc:
            run.failed = None
            await self._finish(run, "failed", {"type": "failed", "error": exc.to_dict()})
            return
        if run.done is not None and run.done.message_id:
            self.message_ids[run.item_id] = run.done.message_id
        if run.failed is not None:
            await self._finish(
                run, "failed", {"type": "failed", "error": run.failed.error.to_dict()}
            )
        else:
            await self._finish(run, "completed")

    def _bind(self, session_id: str) -> None:
        self.cozy_session = session_id

    async def _finish(
        self, run: ResponseRun, status: str, details: dict[str, Any] | None = None
    ) -> None:
        if self.response is run:
            self.response = None
        if run.created:
            self.items[run.item_id] = run.item(
                "completed" if status == "completed" else "incomplete"
            )
        await close_output(run, self.send, status, details)

    async def cancel_response(self, reason: str) -> None:
        """Stop the active response now; the orchestrator keeps the partial answer."""
        run = self.response
        if run is None or run.task is None:
            return
        run.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await run.task
        if run.finished:
            return
        if not run.created:  # cancelled before it began: its input waits for the next one
            self.pending[:0] = run.inputs
        if run.done is not None and run.done.message_id:  # the text was complete, the audio not
            with contextlib.suppress(CozyError):
                await self.runtime.store.update_message(run.done.message_id, status="interrupted")
        await self._finish(run, "cancelled", {"type": "cancelled", "reason": reason})

    # --- lifetime ----------------------------------------------------------------------
    def _spawn(self, coro: Awaitable[str]) -> asyncio.Task[str]:
        task: asyncio.Task[str] = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def close(self) -> None:
        """The client is gone: stop the answer (saved as interrupted) and the transcriptions."""
        run = self.response
        if run is not None and run.task is not None:
            run.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await run.task
            if run.done is not None and run.done.message_id and not run.finished:
                with contextlib.suppress(CozyError):
                    await self.runtime.store.update_message(
                        run.done.message_id, status="interrupted"
                    )
        for task in list(self.tasks):
            task.cancel()
        self.response = None
