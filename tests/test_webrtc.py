"""`cozy serve --webrtc`: an aiortc peer sends a spoken WAV over WebRTC to the FastRTC
endpoint and receives the spoken answer back. Needs the `webrtc` extra (fastrtc, which
pins older pydantic/starlette/websockets, so it lives in its own venv):

    uv venv .venv-webrtc && uv pip install --python .venv-webrtc/bin/python \\
        -e '.[server,voice,webrtc]' pytest pytest-asyncio pytest-timeout
    .venv-webrtc/bin/python -m pytest tests/test_webrtc.py
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from realtime_helpers import VOICE_YAML
from server_fixtures import Served, start_server
from voice_support import concat, espeak, needs_espeak, silence

from cozy.testing import FakeModelServer

pytest.importorskip("fastrtc", reason="the webrtc extra is not installed")
aiortc = pytest.importorskip("aiortc")
pytestmark = [needs_espeak, pytest.mark.timeout(90)]


@pytest.fixture(name="served")
def served_fixture(
    cozy_home: Path, fake_model: FakeModelServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Served]:
    monkeypatch.setenv("COZY_SERVER_WEBRTC", "1")
    tts = f"  tts: {{provider: piper, voices: {{slow: '{slow_voice(tmp_path)}'}}}}\n"
    yaml = VOICE_YAML.replace("  silence_ms: 400\n", "  silence_ms: 400\n" + tts, 1)
    assert tts in yaml
    thread, served = start_server(cozy_home, fake_model, yaml)
    try:
        yield served
    finally:
        thread.stop()


def slow_voice(where: Path) -> Path:
    """The packaged Piper voice again, told (in its .onnx.json) to speak at half speed."""
    from cozy.engines.voice.model_files import piper_voice

    joe = piper_voice()
    slow = where / "slow-joe.onnx"
    slow.symlink_to(joe)
    config = json.loads(Path(str(joe) + ".json").read_text(encoding="utf-8"))
    inference = config.setdefault("inference", {})
    inference["length_scale"] = 2.0 * float(inference.get("length_scale", 1.0))
    Path(str(slow) + ".json").write_text(json.dumps(config), encoding="utf-8")
    return slow


async def converse(served: Served, wav: Path, voice: str | None = None) -> float:
    """One WebRTC call: say `wav`, return the seconds of audible answer heard back."""
    from aiortc import RTCPeerConnection, RTCSessionDescription
    from aiortc.contrib.media import MediaPlayer

    fake_model = served.fake
    asked = len(fake_model.chat_requests())
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
        body: dict[str, object] = {
            "sdp": pc.localDescription.sdp,
            "type": "offer",
            "webrtc_id": uuid.uuid4().hex,
        }
        if voice is not None:
            body["voice"] = voice
        async with httpx.AsyncClient() as http:
            noauth = await http.post(served.url + "/rtc/webrtc/offer", json=body)
            assert noauth.status_code == 401  # behind the server's auth like any API
            answer = await http.post(
                served.url + "/rtc/webrtc/offer", json=body, headers=served.headers(), timeout=30
            )
        assert answer.status_code == 200, (answer.headers, answer.text)
        data = answer.json()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=data["sdp"], type=data["type"]))
        loud, quiet_since, last = 0.0, 0.0, 0.0
        for _ in range(600):  # up to 60 s; done once the answer was heard and 2 s passed quiet
            await asyncio.sleep(0.1)
            audio = np.concatenate(received) if received else np.zeros(0, np.float32)
            loud = float(np.sum(np.abs(audio) > 0.02)) / 48_000
            quiet_since = quiet_since + 0.1 if loud == last else 0.0
            last = loud
            if loud > 0.3 and quiet_since >= 2.0 and len(fake_model.chat_requests()) > asked:
                break
        assert len(fake_model.chat_requests()) > asked, "the spoken turn never reached the model"
        heard_texts = [r["messages"][-1]["content"] for r in fake_model.turn_requests()]
        assert "what time is it" in heard_texts, heard_texts
        assert loud > 0.3, f"only {loud:.2f} s of audible answer came back"
        return loud
    finally:
        await pc.close()
        for task in pullers:
            task.cancel()


def question(tmp_path: Path) -> Path:
    wav = tmp_path / "ask.wav"
    wav.write_bytes(
        concat(silence(0.5, 22_050), espeak("what time is it"), silence(2.5, 22_050)).wav()
    )
    return wav


async def test_aiortc_peer_speaks_and_hears_the_answer(served: Served, tmp_path: Path) -> None:
    served.fake.queue_reply("It is twelve o'clock.")
    await converse(served, question(tmp_path))


async def test_the_offer_picks_the_voice(served: Served, tmp_path: Path) -> None:
    async with httpx.AsyncClient() as http:
        bad = await http.post(
            served.url + "/rtc/webrtc/offer",
            json={"sdp": "v=0", "type": "offer", "webrtc_id": "x", "voice": "robot-9000"},
            headers=served.headers(),
            timeout=30,
        )
    assert bad.status_code == 400, bad.text
    assert "robot-9000" in bad.text and "slow" in bad.text  # names the voices there are
    wav = question(tmp_path)
    served.fake.queue_reply("It is twelve o'clock, and the sun is out.")
    normal = await converse(served, wav)
    served.fake.queue_reply("It is twelve o'clock, and the sun is out.")
    slow = await converse(served, wav, voice="slow")
    assert slow / normal > 1.4, (normal, slow)  # the half-speed voice answered
