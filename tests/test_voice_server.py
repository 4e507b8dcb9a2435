"""The audio endpoints on the real app under uvicorn, through the official openai
client, httpx (SSE) and a websockets client; plus the OpenAI-compatible STT/TTS
providers pointed at this server."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from server_fixtures import Served, start_server
from voice_support import COMMANDS, concat, espeak, needs_espeak, silence

from cozy.engines.voice.audio import decode, decode_pcm16
from cozy.engines.voice.engine import LocalVoice
from cozy.testing import FakeModelServer

pytestmark = needs_espeak

GRAMMAR_YAML = (
    "voice:\n  provider: local\n  stt: {provider: pocketsphinx, grammar: "
    + json.dumps(COMMANDS)
    + "}\n"
)


@pytest.fixture(name="served")
def served_fixture(cozy_home: Path, fake_model: FakeModelServer) -> Iterator[Served]:
    thread, info = start_server(cozy_home, fake_model, GRAMMAR_YAML)
    try:
        yield info
    finally:
        thread.stop()


def client(served: Served) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.base_url, api_key=served.keys["alice"], max_retries=0)


def speech_wav(text: str, tmp_path: Path) -> Path:
    path = tmp_path / "speech.wav"
    path.write_bytes(concat(silence(0.3, 22_050), espeak(text)).wav())
    return path


def test_transcriptions_through_the_openai_client(served: Served, tmp_path: Path) -> None:
    wav = speech_wav("set a timer for five minutes", tmp_path)
    api = client(served)
    with wav.open("rb") as fh:
        result = api.audio.transcriptions.create(model="cozy-stt", file=fh)
    assert result.text == "set a timer for five minutes"
    with wav.open("rb") as fh:
        text = api.audio.transcriptions.create(model="cozy-stt", file=fh, response_format="text")
    assert str(text).strip() == "set a timer for five minutes"
    with wav.open("rb") as fh:
        verbose = api.audio.transcriptions.create(
            model="cozy-stt", file=fh, response_format="verbose_json"
        )
    assert verbose.text == "set a timer for five minutes" and verbose.duration > 1.0


def test_transcriptions_bad_input(served: Served, tmp_path: Path) -> None:
    api = client(served)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....this is not audio" * 20)
    with bad.open("rb") as fh, pytest.raises(openai.BadRequestError, match="could not decode"):
        api.audio.transcriptions.create(model="cozy-stt", file=fh)
    wav = speech_wav("stop", tmp_path)
    with wav.open("rb") as fh, pytest.raises(openai.BadRequestError, match="response_format"):
        api.audio.transcriptions.create(
            model="cozy-stt", file=fh,
            response_format="xml",  # type: ignore[arg-type]
        )  # fmt: skip
    noauth = httpx.post(served.base_url + "/audio/transcriptions", files={"file": b"x"}, timeout=30)
    assert noauth.status_code == 401


def test_speech_streamed_wav_and_pcm(served: Served, tmp_path: Path) -> None:
    api = client(served)
    out = tmp_path / "speech.wav"
    text = "Hello from cozy. This answer is spoken offline."
    with api.audio.speech.with_streaming_response.create(
        model="cozy-tts", voice="alloy", input=text, response_format="wav"
    ) as resp:
        assert resp.headers["content-type"].startswith("audio/wav")
        chunks = list(resp.iter_bytes())
        resp.stream_to_file  # noqa: B018 - the streaming helper exists on this response
    out.write_bytes(b"".join(chunks))
    data = out.read_bytes()
    clip = decode_pcm16(data[44:], 24_000)  # streamed WAV: sizes unknown in the header
    assert 2.0 < clip.seconds < 6.0
    with api.audio.speech.with_streaming_response.create(
        model="cozy-tts", voice="alloy", input=text, response_format="pcm"
    ) as resp:
        assert resp.headers["x-sample-rate"] == "24000"
        pcm = b"".join(resp.iter_bytes())
    # Piper's durations vary a little between runs (its duration noise)
    assert abs(decode_pcm16(pcm, 24_000).seconds - clip.seconds) < 0.1 * clip.seconds
    with pytest.raises(openai.BadRequestError, match="response_format"):
        api.audio.speech.create(
            model="cozy-tts", voice="alloy", input=text,
            response_format="ogg",  # type: ignore[arg-type]
        )  # fmt: skip
    with pytest.raises(openai.BadRequestError):
        api.audio.speech.create(model="cozy-tts", voice="alloy", input="", response_format="wav")


def test_stt_http_raw_pcm_and_file(served: Served, tmp_path: Path) -> None:
    wav = speech_wav("volume up", tmp_path)
    pcm = decode(wav).at(16_000).pcm16()
    raw = httpx.post(
        served.url + "/v1/audio/stt?sample_rate=16000",
        content=pcm,
        headers={**served.headers(), "content-type": "audio/pcm"},
        timeout=30,  # the first call loads the recogniser: seconds on a loaded machine
    )
    assert raw.status_code == 200, raw.text
    assert raw.json()["text"] == "volume up" and raw.json()["sample_rate"] == 16_000
    upload = httpx.post(
        served.url + "/v1/audio/stt",
        content=wav.read_bytes(),
        headers={**served.headers(), "content-type": "audio/wav"},
        timeout=30,
    )
    assert upload.json()["text"] == "volume up" and upload.json()["rtf"] > 0
    odd = httpx.post(
        served.url + "/v1/audio/stt?sample_rate=16000",
        content=b"\x00\x01\x02",
        headers={**served.headers(), "content-type": "audio/pcm"},
        timeout=30,  # the first call loads the recogniser: seconds on a loaded machine
    )
    assert odd.status_code == 400 and "odd number" in odd.text


def test_stt_websocket_partials_and_finals(served: Served) -> None:
    from websockets.sync.client import connect

    audio = concat(
        silence(0.4, 22_050),
        espeak("turn on the kitchen lights"),
        silence(1.2, 22_050),
        espeak("play some music"),
        silence(1.0, 22_050),
    )
    pcm = audio.at(16_000).pcm16()
    url = served.url.replace("http://", "ws://") + "/v1/audio/stt?sample_rate=16000"
    events = []
    with connect(url, additional_headers=served.headers()) as ws:
        for i in range(0, len(pcm), 3200):  # 100 ms frames
            ws.send(pcm[i : i + 3200])
        ws.send("end")
        while True:
            event = json.loads(ws.recv(timeout=30))
            events.append(event)
            if event["type"] in ("done", "error"):
                break
    finals = [e["text"] for e in events if e["type"] == "final"]
    assert finals == ["turn on the kitchen lights", "play some music"], events
    assert sum(e["type"] == "speech_started" for e in events) == 2
    assert any(e["type"] == "partial" for e in events)


def test_tts_sse_and_http(served: Served) -> None:
    text = "First sentence here. And a second one."
    frames, done = [], None
    with httpx.stream(
        "POST",
        served.url + "/v1/audio/tts",
        json={"input": text, "stream": True},
        headers=served.headers(),
        timeout=30,
    ) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        event = ""
        for line in resp.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
                if event == "audio":
                    frames.append(base64.b64decode(data["audio"]))
                elif event == "done":
                    done = data
    assert len(frames) == 2 and done is not None  # one frame per sentence
    streamed = decode_pcm16(b"".join(frames), 24_000)
    assert abs(streamed.seconds - done["duration"]) < 0.01
    whole = httpx.post(
        served.url + "/v1/audio/tts", json={"input": text}, headers=served.headers(), timeout=30
    )
    assert whole.headers["content-type"].startswith("audio/wav")
    assert abs(decode(whole.content).seconds - streamed.seconds) < 0.1 * streamed.seconds


async def test_openai_providers_against_this_server(served: Served, tmp_path: Path) -> None:
    remote = {"base_url": served.base_url, "api_key": served.keys["bob"]}
    engine = LocalVoice(
        {"stt": {"provider": "openai", **remote}, "tts": {"provider": "openai", **remote}}
    )
    await engine.initialize()
    try:
        clip = await engine.synthesize("Turn on the kitchen lights.")
        assert clip.rate == 24_000 and 1.0 < clip.seconds < 4.0
        question = concat(silence(0.3, 22_050), espeak("turn off the kitchen lights"))
        assert await engine.transcribe_clip(question) == "turn off the kitchen lights"
    finally:
        await engine.close()
    down = LocalVoice({"stt": {"provider": "openai", "base_url": "http://127.0.0.1:9/v1"}})
    await down.initialize()
    from cozy.core.errors import EngineError

    with pytest.raises(EngineError, match="unreachable"):
        await down.transcribe_clip(question)
    await down.close()


def test_espeak_refuses_an_unknown_voice_before_the_stream(
    tmp_path: Path, fake_model: FakeModelServer
) -> None:
    """espeak-ng takes any name after -v and fails only when it runs: an unknown voice
    once broke a streamed /v1/audio/speech after its 200 (schemathesis sent voice "0").
    It is a 400 now; espeak-ng's own voices and OpenAI's names still speak."""
    thread, served = start_server(tmp_path, fake_model, "voice:\n  tts: {provider: espeak}\n")
    try:
        api = client(served)
        with pytest.raises(openai.BadRequestError, match="unknown voice '0'"):
            api.audio.speech.create(model="cozy-tts", voice="0", input="Hi.", response_format="wav")
        for voice in ("en-us", "alloy"):
            audio = api.audio.speech.create(
                model="cozy-tts", voice=voice, input="Hello there.", response_format="pcm"
            )
            assert decode_pcm16(audio.content, 24_000).seconds > 0.3
    finally:
        thread.stop()
