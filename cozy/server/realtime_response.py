"""One realtime response: the orchestrator's answer as protocol events (text and/or audio).

The turn goes through `runtime.orchestrator.run()` like any chat turn (personality,
context, tools, persistence in the connection's cozy session). Text deltas become
`response.output_audio_transcript.delta` (audio) or `response.output_text.delta`
(text); the voice engine's `speak_stream` turns the text into PCM16 sentence by
sentence, sent as `response.output_audio.delta` in 200 ms pieces. Cancelling the
task (response.cancel, barge-in, a vanished client) stops the answer where it is;
the orchestrator saves the partial answer as interrupted.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cozy.core.events import Done, Failed, Started, TextDelta
from cozy.core.orchestrator import ChatRequest
from cozy.core.types import GenerationOptions
from cozy.server.realtime_protocol import RATE, new_id, tts_voice

if TYPE_CHECKING:
    import asyncio

    from cozy.engines.base import VoiceEngine
    from cozy.runtime import Runtime

Send = Callable[[dict[str, Any]], Awaitable[None]]
AUDIO_PIECE = RATE * 2 // 5  # 200 ms of PCM16 per output_audio.delta


@dataclass(slots=True)
class ResponseRun:
    modalities: list[str]
    conversation_id: str
    voice: str
    max_output_tokens: int | None
    id: str = field(default_factory=lambda: new_id("resp"))
    item_id: str = field(default_factory=lambda: new_id("item"))
    text: list[str] = field(default_factory=list)
    done: Done | None = None
    failed: Failed | None = None
    task: asyncio.Task[None] | None = None
    inputs: list[Any] = field(default_factory=list)  # the user input it answers
    created: bool = False  # response.created was sent
    finished: bool = False  # response.done was sent

    @property
    def audio(self) -> bool:
        return "audio" in self.modalities

    @property
    def transcript(self) -> str:
        return "".join(self.text)

    def part(self, final: bool = False) -> dict[str, Any]:
        if self.audio:
            return {"type": "audio", "transcript": self.transcript if final else ""}
        return {"type": "text", "text": self.transcript if final else ""}

    def item(self, status: str) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if status != "in_progress":
            kind = "output_audio" if self.audio else "output_text"
            key = "transcript" if self.audio else "text"
            content = [{"type": kind, key: self.transcript}]
        return {
            "id": self.item_id,
            "object": "realtime.item",
            "type": "message",
            "role": "assistant",
            "status": status,
            "content": content,
        }

    def body(self, status: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
        output = [] if status == "in_progress" else [self.item(_item_status(status))]
        return {
            "id": self.id,
            "object": "realtime.response",
            "status": status,
            "status_details": details,
            "output": output,
            "conversation_id": self.conversation_id,
            "output_modalities": list(self.modalities),
            "max_output_tokens": self.max_output_tokens or "inf",
            "audio": {
                "output": {"format": {"type": "audio/pcm", "rate": RATE}, "voice": self.voice}
            },
            "usage": self.usage() if status != "in_progress" else None,
            "metadata": None,
        }

    def usage(self) -> dict[str, Any]:
        u = self.done.usage if self.done else {}
        inp, out = int(u.get("prompt_tokens", 0)), int(u.get("completion_tokens", 0))
        return {
            "total_tokens": int(u.get("total_tokens", inp + out)),
            "input_tokens": inp,
            "output_tokens": out,
            "input_token_details": {
                "text_tokens": inp,
                "audio_tokens": 0,
                "cached_tokens": 0,
                "image_tokens": 0,
            },
            "output_token_details": {"text_tokens": out, "audio_tokens": 0},
        }

    def ids(self, content: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"response_id": self.id, "item_id": self.item_id, "output_index": 0}
        if content:
            out["content_index"] = 0
        return out


def _item_status(status: str) -> str:
    return "completed" if status == "completed" else "incomplete"


async def open_output(run: ResponseRun, send: Send, previous_item_id: str | None) -> None:
    """response.created, the output item and its content part."""
    await send({"type": "response.created", "response": run.body("in_progress")})
    run.created = True
    item = run.item("in_progress")
    await send(
        {
            "type": "response.output_item.added",
            "response_id": run.id,
            "output_index": 0,
            "item": item,
        }
    )
    await send(
        {"type": "conversation.item.added", "previous_item_id": previous_item_id, "item": item}
    )
    await send({"type": "response.content_part.added", **run.ids(), "part": run.part()})


async def close_output(
    run: ResponseRun, send: Send, status: str, details: dict[str, Any] | None = None
) -> None:
    """The `.done` events and `response.done` (sent once, whatever ended the response)."""
    if run.finished:
        return
    run.finished = True
    if run.created:
        if run.audio:
            await send({"type": "response.output_audio.done", **run.ids()})
            await send(
                {
                    "type": "response.output_audio_transcript.done",
                    **run.ids(),
                    "transcript": run.transcript,
                }
            )
        else:
            await send({"type": "response.output_text.done", **run.ids(), "text": run.transcript})
        await send({"type": "response.content_part.done", **run.ids(), "part": run.part(True)})
        item = run.item(_item_status(status))
        await send(
            {
                "type": "response.output_item.done",
                "response_id": run.id,
                "output_index": 0,
                "item": item,
            }
        )
        await send({"type": "conversation.item.done", "item": item})
    else:
        await send({"type": "response.created", "response": run.body("in_progress")})
    await send({"type": "response.done", "response": run.body(status, details)})


async def generate(
    run: ResponseRun,
    runtime: Runtime,
    engine: VoiceEngine | None,
    request: ChatRequest,
    send: Send,
    on_session: Callable[[str], None],
) -> None:
    """Stream the orchestrator's answer as deltas (and speech); fills run.done / run.failed."""
    events = runtime.orchestrator.run(request)
    delta_type = (
        "response.output_audio_transcript.delta" if run.audio else ("response.output_text.delta")
    )

    async def text() -> AsyncIterator[str]:
        try:
            async for event in events:
                if isinstance(event, Started):
                    on_session(event.session_id)
                elif isinstance(event, TextDelta) and event.text:
                    run.text.append(event.text)
                    await send({"type": delta_type, **run.ids(), "delta": event.text})
                    yield event.text
                elif isinstance(event, Done):
                    run.done = event
                elif isinstance(event, Failed):
                    run.failed = event
        finally:
            await events.aclose()

    if not run.audio or engine is None:
        async for _ in text():
            pass
        return
    async for pcm in engine.speak_stream(text(), voice=tts_voice(run.voice)):
        if engine.output_rate != RATE:
            pcm = await _resample(pcm, engine.output_rate)
        for start in range(0, len(pcm), AUDIO_PIECE):
            piece = pcm[start : start + AUDIO_PIECE]
            await send(
                {
                    "type": "response.output_audio.delta",
                    **run.ids(),
                    "delta": base64.b64encode(piece).decode(),
                }
            )


async def _resample(pcm: bytes, rate: int) -> bytes:
    import asyncio

    from cozy.engines.voice.audio import from_pcm16, resample, to_pcm16

    return await asyncio.to_thread(lambda: to_pcm16(resample(from_pcm16(pcm), rate, RATE)))


def build_request(
    prompt: str,
    *,
    caller: Any,
    session: str | None,
    personality: str | None,
    model: str | None,
    instructions: str,
    max_tokens: int | None,
    request_id: str,
) -> ChatRequest:
    return ChatRequest(
        prompt=prompt,
        caller=caller,
        session=session or "new",
        personality=personality,
        model=model,
        system=instructions.strip() or None,
        options=GenerationOptions(max_tokens=max_tokens),
        request_id=request_id,
    )
