"""`/v1/realtime` bad input: protocol `error` events (the socket stays), clean closes with
reasons, auth, limits, a client that vanishes mid-answer, and the beta event names."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import httpx
import openai
import pytest
import websockets
from realtime_helpers import (
    Reader,
    client,
    pcm24,
    served_fixture,
    stored_messages,
    text_of,
    user_item,
)
from server_fixtures import Served
from voice_support import needs_espeak

pytestmark = [needs_espeak, pytest.mark.timeout(120)]
__all__ = ["served_fixture"]


def ws_url(served: Served, model: str = "cozy") -> str:
    return served.url.replace("http://", "ws://") + f"/v1/realtime?model={model}"


async def raw(served: Served, **headers: str) -> Any:
    auth = {"Authorization": f"Bearer {served.keys['alice']}", **headers}
    return await websockets.connect(ws_url(served), additional_headers=auth, max_size=None)


async def recv(ws: Any, kind: str, wait: float = 20.0) -> dict[str, Any]:
    async with asyncio.timeout(wait):
        while True:
            event = json.loads(await ws.recv())
            if event["type"] == kind:
                return dict(event)


async def error_for(ws: Any, message: str | bytes) -> dict[str, Any]:
    await ws.send(message)
    event = await recv(ws, "error")
    assert set(event["error"]) >= {"type", "code", "message", "param", "event_id"}
    return dict(event["error"])


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def test_bad_events_get_error_events_and_the_session_goes_on(served: Served) -> None:
    served.fake.queue_reply("Still here.")
    ws = await raw(served)
    try:
        await recv(ws, "session.created")
        err = await error_for(ws, "{not json")
        assert err["code"] == "invalid_json"
        err = await error_for(ws, json.dumps({"type": "no.such.event", "event_id": "evt_1"}))
        assert (err["code"], err["param"], err["event_id"]) == ("invalid_value", "type", "evt_1")
        assert "input_audio_buffer.append" in err["message"]  # names what is supported
        err = await error_for(ws, json.dumps(["a", "list"]))
        assert err["code"] == "invalid_event"
        err = await error_for(ws, b"\x00\x01binary")
        assert err["code"] == "invalid_event" and "base64" in err["message"]
        append = {"type": "input_audio_buffer.append"}
        err = await error_for(ws, json.dumps({**append, "audio": "%%% not base64"}))
        assert err["code"] == "invalid_value" and err["param"] == "audio"
        err = await error_for(ws, json.dumps({**append, "audio": b64(b"\x01\x02\x03")}))
        assert err["code"] == "invalid_audio_format"
        wav = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(64)
        err = await error_for(ws, json.dumps({**append, "audio": b64(wav)}))
        assert err["code"] == "invalid_audio_format" and "24000" in err["message"]
        err = await error_for(ws, json.dumps({"type": "input_audio_buffer.commit"}))
        assert err["code"] == "input_audio_buffer_commit_empty"
        err = await error_for(ws, json.dumps({"type": "response.create"}))
        assert err["code"] == "no_input"
        err = await error_for(ws, json.dumps({"type": "response.cancel"}))
        assert err["code"] == "response_cancel_not_active"
        bad_format = {"type": "session.update", "session": {"type": "realtime", "audio": {
            "input": {"format": {"type": "audio/pcmu"}}}}}  # fmt: skip
        err = await error_for(ws, json.dumps(bad_format))
        assert err["param"] == "session.audio.input.format" and "audio/pcm" in err["message"]
        bad_vad = {"type": "session.update", "session": {"type": "realtime", "audio": {
            "input": {"turn_detection": {"type": "server_vad", "threshold": 7}}}}}  # fmt: skip
        err = await error_for(ws, json.dumps(bad_vad))
        assert err["param"].endswith("threshold")
        err = await error_for(ws, json.dumps({"type": "conversation.item.create", "item": {
            "type": "function_call_output", "call_id": "x", "output": "{}"}}))  # fmt: skip
        assert err["param"] == "item.type"
        err = await error_for(ws, json.dumps({"type": "conversation.item.delete",
                                              "item_id": "item_nope"}))  # fmt: skip
        assert err["code"] == "item_not_found"
        # after all that, a normal turn works and the rejected session.update changed nothing
        await ws.send(json.dumps({"type": "conversation.item.create", "item": user_item("hi")}))
        await ws.send(json.dumps({"type": "response.create"}))
        done = await recv(ws, "response.done")
        assert done["response"]["status"] == "completed"
        assert done["response"]["output"][0]["content"][0]["transcript"] == "Still here."
    finally:
        await ws.close()
    async with httpx.AsyncClient() as http:
        assert (await http.get(served.url + "/health")).status_code == 200


async def test_limits_oversize_append_full_buffer_and_session_length(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COZY_SERVER_REALTIME_MAX_APPEND_BYTES", "20000")
    monkeypatch.setenv("COZY_SERVER_REALTIME_MAX_BUFFER_SECONDS", "1")
    monkeypatch.setenv("COZY_SERVER_REALTIME_MAX_SESSION_SECONDS", "3")
    ws = await raw(served)
    try:
        await recv(ws, "session.created")
        off = {"type": "session.update", "session": {"type": "realtime",
               "audio": {"input": {"turn_detection": None}}}}  # fmt: skip
        await ws.send(json.dumps(off))
        await recv(ws, "session.updated")
        append = {"type": "input_audio_buffer.append"}
        err = await error_for(ws, json.dumps({**append, "audio": b64(bytes(48_000))}))
        assert err["code"] == "audio_too_large" and "smaller" in err["message"]
        for _ in range(5):  # 5 x 200 ms fills the 1 s buffer
            await ws.send(json.dumps({**append, "audio": b64(bytes(9_600))}))
        err = await error_for(ws, json.dumps({**append, "audio": b64(bytes(9_600))}))
        assert err["code"] == "input_audio_buffer_full" and "commit" in err["message"]
        await ws.send(json.dumps({"type": "input_audio_buffer.clear"}))
        await recv(ws, "input_audio_buffer.cleared")
        expired = await recv(ws, "error", wait=10)
        assert expired["error"]["code"] == "session_expired"
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 1000 and ws.close_reason == "session expired"
    finally:
        await ws.close()


async def test_auth_and_unknown_model(served: Served) -> None:
    with pytest.raises(websockets.InvalidStatus) as info:
        await websockets.connect(ws_url(served))
    assert info.value.response.status_code == 401
    assert b"cozy keys create" in info.value.response.body
    bad = {"Authorization": "Bearer sk-cozy-not-a-real-key"}
    with pytest.raises(websockets.InvalidStatus) as info:
        await websockets.connect(ws_url(served), additional_headers=bad)
    assert info.value.response.status_code == 401
    sdk = openai.AsyncOpenAI(base_url=served.base_url, api_key="sk-cozy-bad", max_retries=0)
    with pytest.raises(websockets.InvalidStatus, match="HTTP 401"):
        async with sdk.realtime.connect(model="cozy"):
            pass
    token = served.token("carol")  # a JWT works like a key
    async with websockets.connect(
        ws_url(served), additional_headers={"Authorization": f"Bearer {token}"}
    ) as ws:
        await recv(ws, "session.created")
    async with websockets.connect(
        ws_url(served, "cozy/nope"), additional_headers={"Authorization": f"Bearer {token}"}
    ) as ws:
        err = await recv(ws, "error")
        assert (
            err["error"]["code"] == "model_not_found"
            and "cozy/assistant" in err["error"]["message"]
        )
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 1008


async def test_client_vanishing_mid_answer_keeps_the_partial_answer(served: Served) -> None:
    served.fake.tokens_per_second = 10
    served.fake.queue_reply(" ".join(f"part{i}." for i in range(80)))
    ws = await raw(served)
    await recv(ws, "session.created")
    await ws.send(json.dumps({"type": "conversation.item.create", "item": user_item("go")}))
    await ws.send(json.dumps({"type": "response.create"}))
    await recv(ws, "response.output_audio_transcript.delta")
    ws.transport.abort()  # no close frame: the client just disappears
    for _ in range(600):  # up to ~30 s: the server notices the vanished client on its own time
        rows = stored_messages(served)
        if any(m.role == "assistant" for m in rows):
            break
        await asyncio.sleep(0.05)
    assistant = [m for m in rows if m.role == "assistant"]
    assert assistant and assistant[0].status == "interrupted"
    assert assistant[0].content.startswith("part0.") and "part79" not in assistant[0].content
    # the server is fine and serves the next client
    served.fake.queue_reply("Back again.")
    async with client(served).realtime.connect(model="cozy") as conn:
        r = Reader(conn)
        await r.next()
        await conn.conversation.item.create(item=user_item("hello"))
        await conn.response.create(response={"output_modalities": ["text"]})
        events = await r.until("response.done")
    assert text_of(events, "response.output_text.delta") == "Back again."


async def test_beta_clients_get_beta_event_names(served: Served) -> None:
    served.fake.queue_reply("Beta reply.")
    ws = await raw(served, **{"OpenAI-Beta": "realtime=v1"})
    try:
        await recv(ws, "session.created")
        await ws.send(json.dumps({"type": "session.update", "session": {
            "modalities": ["text", "audio"], "input_audio_format": "pcm16",
            "output_audio_format": "pcm16", "turn_detection": None,
            "input_audio_transcription": {"model": "whisper-1"}}}))  # fmt: skip
        updated = await recv(ws, "session.updated")
        assert updated["session"]["audio"]["input"]["turn_detection"] is None
        pcm = pcm24("play some music")
        for i in range(0, len(pcm), 4800):
            await ws.send(json.dumps({"type": "input_audio_buffer.append",
                                      "audio": b64(pcm[i : i + 4800])}))  # fmt: skip
        await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
        await ws.send(json.dumps({"type": "response.create"}))
        kinds: list[str] = []
        events: list[dict[str, Any]] = []
        async with asyncio.timeout(30):
            while not kinds or kinds[-1] != "response.done":
                events.append(json.loads(await ws.recv()))
                kinds.append(events[-1]["type"])
    finally:
        await ws.close()
    assert "conversation.item.created" in kinds and "conversation.item.added" not in kinds
    assert "response.audio.delta" in kinds and "response.output_audio.delta" not in kinds
    transcript = "".join(
        e["delta"] for e in events if e["type"] == "response.audio_transcript.delta"
    )
    assert transcript == "Beta reply."
    heard = [e for e in events if e["type"].endswith("input_audio_transcription.completed")]
    assert heard[0]["transcript"] == "play some music"
