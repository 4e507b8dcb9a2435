"""Helpers for the `/v1/realtime` tests: the served app with voice, the official client,
espeak-ng speech as PCM16 24 kHz, and an event reader that checks every server event
against the SDK's own schema."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from pydantic import TypeAdapter
from server_fixtures import Served, start_server
from voice_support import COMMANDS, concat, espeak, silence

from cozy.engines.voice.audio import Clip
from cozy.testing import FakeModelServer

RATE = 24_000
VOICE_YAML = (
    "voice:\n  provider: local\n  stt: {provider: pocketsphinx, grammar: "
    + json.dumps(COMMANDS)
    + "}\n  silence_ms: 400\n"
    # voice tests read the fake model's last request: no background memory/profile jobs
    # (which the server's worker would run) may slip in after the turn
    + "memory: {provider: none}\nprofile: {provider: none}\nknowledge: {provider: none}\n"
)

_ADAPTER: TypeAdapter[Any] | None = None


def server_event_adapter() -> TypeAdapter[Any]:
    global _ADAPTER
    if _ADAPTER is None:
        from openai.types.realtime import RealtimeServerEvent

        _ADAPTER = TypeAdapter(RealtimeServerEvent)
    return _ADAPTER


@pytest.fixture(name="served")
def served_fixture(cozy_home: Path, fake_model: FakeModelServer) -> Iterator[Served]:
    thread, info = start_server(cozy_home, fake_model, VOICE_YAML)
    try:
        yield info
    finally:
        thread.stop()


def client(served: Served, who: str = "alice") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=served.base_url, api_key=served.keys[who], max_retries=0)


def pcm24(text: str, *, lead: float = 0.3, tail: float = 0.8) -> bytes:
    """espeak-ng speaking `text`, with silence around it, as PCM16 at 24 kHz."""
    clip = concat(silence(lead, RATE), espeak(text).at(RATE), silence(tail, RATE))
    return Clip(clip.samples, RATE).pcm16()


def chunks(pcm: bytes, ms: int = 100) -> Iterator[str]:
    step = RATE * 2 * ms // 1000
    for i in range(0, len(pcm), step):
        yield base64.b64encode(pcm[i : i + step]).decode()


class Reader:
    """Receives events through the SDK connection; validates each against the SDK types."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.events: list[Any] = []
        self.times: list[float] = []

    async def next(self, wait: float = 30.0) -> Any:
        event = await asyncio.wait_for(self.conn.recv(), wait)
        server_event_adapter().validate_python(event.to_dict())  # schema-valid, strictly
        self.events.append(event)
        self.times.append(time.perf_counter())
        return event

    async def until(self, kind: str, wait: float = 30.0) -> list[Any]:
        """Events up to and including the first of type `kind`."""
        seen: list[Any] = []
        deadline = time.monotonic() + wait
        while True:
            event = await self.next(max(0.1, deadline - time.monotonic()))
            seen.append(event)
            if event.type == kind:
                return seen


def of(events: list[Any], kind: str) -> list[Any]:
    return [e for e in events if e.type == kind]


def text_of(events: list[Any], kind: str) -> str:
    return "".join(e.delta for e in of(events, kind))


def audio_of(events: list[Any]) -> bytes:
    return b"".join(base64.b64decode(e.delta) for e in of(events, "response.output_audio.delta"))


def stored_messages(served: Served, session_id: str | None = None) -> list[Any]:
    async def go(store: Any) -> list[Any]:
        sid = session_id
        if sid is None:
            rows = await store.list_sessions("alice")
            sid = rows[0].id
        return list(await store.list_messages(sid))

    return list(served.store_call(go))


def user_item(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
