"""`cozy serve --webrtc`: an aiortc peer sends a spoken WAV over WebRTC to the FastRTC
endpoint and receives the spoken answer back. Needs the `webrtc` extra (fastrtc, which
pins older pydantic/starlette/websockets, so it lives in its own venv):

    uv venv .venv-webrtc && uv pip install --python .venv-webrtc/bin/python \\
        -e '.[server,voice,webrtc]' pytest pytest-asyncio pytest-timeout
    .venv-webrtc/bin/python -m pytest tests/test_webrtc.py
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from realtime_helpers import VOICE_YAML
from test_server_fixtures import Served, start_server
from test_voice_support import concat, espeak, needs_espeak, silence

from cozy.testing import FakeModelServer

pytest.importorskip("fastrtc", reason="the webrtc extra is not installed")
aiortc = pytest.importorskip("aiortc")
pytestmark = [needs_espeak, pytest.mark.timeout(90)]


@pytest.fixture(name="served")
def served_fixture(
    cozy_home: Path, fake_model: FakeModelServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Served]:
    monkeypatch.setenv("COZY_SERVER_WEBRTC", "1")
    thread, served = start_server(cozy_home, fake_model, VOICE_YAML)
    try:
        yield served
    finally:
        thread.stop()


async def test_aiortc_peer_speaks_and_hears_the_answer(served: Served, tmp_path: Path) -> None:
    from aiortc import RTCPeerConnection, RTCSessionDescription
    from aiortc.contrib.media import MediaPlayer

    fake_model = served.fake
    fake_model.queue_reply("It is twelve o'clock.")
    wav = tmp_path / "ask.wav"
    wav.write_bytes(
        concat(silence(0.5, 22_050), espeak("what time is it"), silence(2.5, 22_050)).wav()
    )
    pc = RTCPeerConnection()
    received: list[np.ndarray] = []
    pullers: list[asyncio.Future[None]] = []
    try:
        player = MediaPlayer(str(wav))
        pc.addTrack(player.audio)
        pc.createDataChannel("text")

        @pc.on("track")
        def on_track(track: object) -> None:
            async def pull() -> None:
                while True:
                    frame = await track.recv()  # type: ignore[attr-defined]
                    received.append(frame.to_ndarray().reshape(-1).astype(np.float32) / 32768)

            pullers.append(asyncio.ensure_future(pull()))

        await pc.setLocalDescription(await pc.createOffer())
        body = {"sdp": pc.localDescription.sdp, "type": "offer", "webrtc_id": uuid.uuid4().hex}
        async with httpx.AsyncClient() as http:
            noauth = await http.post(served.url + "/rtc/webrtc/offer", json=body)
            assert noauth.status_code == 401  # behind the server's auth like any API
            answer = await http.post(
                served.url + "/rtc/webrtc/offer", json=body, headers=served.headers(), timeout=30
            )
        assert answer.status_code == 200, (answer.headers, answer.text)
        data = answer.json()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=data["sdp"], type=data["type"]))
        loud = 0.0
        for _ in range(300):  # up to 30 s
            await asyncio.sleep(0.1)
            audio = np.concatenate(received) if received else np.zeros(0, np.float32)
            loud = float(np.sum(np.abs(audio) > 0.02)) / 48_000
            if loud > 0.3 and fake_model.chat_requests():
                break
        assert fake_model.chat_requests(), "the spoken turn never reached the model"
        heard_texts = [r["messages"][-1]["content"] for r in fake_model.turn_requests()]
        assert "what time is it" in heard_texts, heard_texts
        assert loud > 0.3, f"only {loud:.2f} s of audible answer came back"
    finally:
        await pc.close()
        for task in pullers:
            task.cancel()
