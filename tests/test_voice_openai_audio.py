"""OpenAI audio conformance with the default voice (faster-whisper + Piper), through the
official openai client against the real app under uvicorn.

- /v1/audio/speech: every response_format decodes back (soundfile; PyAV for aac) to
  audio of the right duration; speed; OpenAI voice names; unknown voices are a 400.
- /v1/audio/transcriptions: json, text, verbose_json (segments + words), srt, vtt,
  timestamp_granularities, language, prompt.
- /v1/realtime: PCM16 24 kHz of a Piper sentence is transcribed by Whisper.
- The first-use race: four concurrent first requests to a fresh server all succeed.

Piper runs with `noise_w: 0` here so a sentence has the same length every time, and the
speech the tests send is synthesised with `noise_scale: 0` too, so it is the same audio
every run (with Piper's default noise, "What is the capital of France?" was heard as
"... of friends?" in 2 of 16 syntheses: a flaky realtime test).
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
import soundfile as sf
from realtime_helpers import Reader, chunks, of
from server_fixtures import Served, start_server
from voice_support import needs_espeak

from cozy.engines.voice.audio import Clip, decode, decode_pcm16
from cozy.engines.voice.tts_piper import PiperTTS
from cozy.testing import FakeModelServer
from cozy.testing.voice_eval import wer

pytestmark = [needs_espeak, pytest.mark.timeout(300)]

VOICE_YAML = (
    "voice:\n  provider: local\n"
    "  stt: {provider: faster-whisper, model: base, language: auto}\n"
    "  tts: {provider: piper, noise_w: 0.0}\n  silence_ms: 500\n"
    + "memory: {provider: none}\nprofile: {provider: none}\nknowledge: {provider: none}\n"
)
SENTENCE = "Please remind me to call my mother tomorrow."
SAME_AUDIO = {"noise_w": 0.0, "noise_scale": 0.0}  # deterministic Piper: the same speech each run


@pytest.fixture(scope="module")
def served_voice(
    tmp_path_factory: pytest.TempPathFactory, fake_model_session: FakeModelServer
) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("voice-home")
    thread, info = start_server(home, fake_model_session, VOICE_YAML)
    try:
        yield info
    finally:
        thread.stop()


@pytest.fixture(scope="module")
def piper_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    clip = PiperTTS(SAME_AUDIO).synthesize(SENTENCE)
    pad = np.zeros(int(0.3 * clip.rate), dtype=np.float32)
    path = tmp_path_factory.mktemp("speech") / "sentence.wav"
    path.write_bytes(Clip(np.concatenate([pad, clip.samples, pad]), clip.rate).wav())
    return path


def api(served: Served) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=served.base_url, api_key=served.keys["alice"], max_retries=0, timeout=120
    )


def decoded_seconds(fmt: str, data: bytes) -> float:
    if fmt == "pcm":
        return decode_pcm16(data, 24_000).seconds
    if fmt == "aac":  # libsndfile has no AAC: FFmpeg's decoder through PyAV
        import av

        with av.open(io.BytesIO(data)) as container:
            frames = list(container.decode(audio=0))
        return sum(f.samples for f in frames) / frames[0].sample_rate
    info = sf.info(io.BytesIO(data))
    if fmt == "wav":  # a streamed WAV has unknown sizes in its header: read to the end
        samples, rate = sf.read(io.BytesIO(data), dtype="int16")
        return len(samples) / rate
    return float(info.frames) / info.samplerate


def test_speech_every_format_decodes_to_the_right_duration(served_voice: Served) -> None:
    client = api(served_voice)
    pcm = client.audio.speech.create(
        model="tts-1", voice="alloy", input=SENTENCE, response_format="pcm"
    ).content
    reference = decode_pcm16(pcm, 24_000).seconds
    assert 2.0 < reference < 5.0
    seen = {}
    for fmt, media in [("mp3", "audio/mpeg"), ("opus", "audio/ogg"), ("aac", "audio/aac"),
                       ("flac", "audio/flac"), ("wav", "audio/wav")]:  # fmt: skip
        resp = client.audio.speech.create(
            model="tts-1", voice="alloy", input=SENTENCE, response_format=fmt
        )
        assert resp.response.headers["content-type"].startswith(media), fmt
        seen[fmt] = decoded_seconds(fmt, resp.content)
        # encoders pad (mp3 ~50 ms, aac one 1024-sample frame): same length within 0.1 s
        assert abs(seen[fmt] - reference) < 0.1, (fmt, seen[fmt], reference)
    default = client.audio.speech.create(model="tts-1", voice="alloy", input=SENTENCE)
    assert default.response.headers["content-type"].startswith("audio/mpeg")  # OpenAI default
    assert len(default.content) < len(pcm) / 4  # compressed, not PCM in disguise


def test_speech_speed_and_voices(served_voice: Served) -> None:
    client = api(served_voice)

    def seconds(**kw: object) -> float:
        resp = client.audio.speech.create(
            model="tts-1",
            input=SENTENCE,
            response_format="pcm",
            **kw,  # type: ignore[arg-type]
        )
        return decode_pcm16(resp.content, 24_000).seconds

    normal = seconds(voice="nova")
    assert 0.4 < seconds(voice="nova", speed=2.0) / normal < 0.65
    assert 1.6 < seconds(voice="nova", speed=0.5) / normal < 2.4
    assert abs(seconds(voice="onyx") - normal) < 0.01  # OpenAI names map to the voice
    with pytest.raises(openai.BadRequestError, match="unknown voice"):
        client.audio.speech.create(model="tts-1", voice="robot-9000", input=SENTENCE)
    with pytest.raises(openai.BadRequestError, match="file path"):  # names only, over HTTP
        client.audio.speech.create(model="tts-1", voice="/tmp/any.onnx", input=SENTENCE)
    with pytest.raises(openai.BadRequestError, match="response_format"):
        client.audio.speech.create(
            model="tts-1", voice="alloy", input=SENTENCE,
            response_format="ogg",  # type: ignore[arg-type]
        )  # fmt: skip
    with pytest.raises(openai.BadRequestError, match="speed"):
        client.audio.speech.create(model="tts-1", voice="alloy", input=SENTENCE, speed=9.0)


def test_transcription_formats(served_voice: Served, piper_wav: Path) -> None:
    client = api(served_voice)

    def call(**kw: object) -> object:
        with piper_wav.open("rb") as fh:
            return client.audio.transcriptions.create(model="whisper-1", file=fh, **kw)  # type: ignore[call-overload]

    plain = call()
    assert wer([SENTENCE], [plain.text]) <= 0.15, plain.text  # type: ignore[attr-defined]
    text = call(response_format="text")
    assert str(text).strip() == plain.text  # type: ignore[attr-defined]
    verbose = call(
        response_format="verbose_json", timestamp_granularities=["word", "segment"], language="en"
    )
    assert verbose.language == "english" and 2.5 < verbose.duration < 5.0  # type: ignore[attr-defined]
    segments, words = verbose.segments, verbose.words  # type: ignore[attr-defined]
    assert segments and words and segments[0].start < segments[-1].end <= verbose.duration + 0.1  # type: ignore[attr-defined]
    assert [w.word.strip(".,").lower() for w in words[:3]] == ["please", "remind", "me"]
    assert all(a.start <= b.start for a, b in itertools.pairwise(words))
    only_segments = call(response_format="verbose_json")
    assert only_segments.segments and not only_segments.words  # type: ignore[attr-defined]
    srt = str(call(response_format="srt"))
    assert srt.startswith("1\n00:00:0") and " --> " in srt and "remind me" in srt.lower()
    vtt = str(call(response_format="vtt"))
    assert vtt.startswith("WEBVTT\n\n00:00:0") and "remind me" in vtt.lower()
    # a prompt steers spelling: the name is written as the prompt writes it
    prompted = call(prompt="Reminders for Mum and Dad.")
    assert wer([SENTENCE], [prompted.text]) <= 0.3  # type: ignore[attr-defined]
    with pytest.raises(openai.BadRequestError, match="verbose_json"):
        call(response_format="json", timestamp_granularities=["word"])
    with pytest.raises(openai.BadRequestError, match="response_format"):
        call(response_format="xml")


async def test_realtime_transcribes_a_piper_sentence(served_voice: Served) -> None:
    clip = decode(PiperTTS(SAME_AUDIO).synthesize("What is the capital of France?").wav())
    silence = np.zeros(int(0.8 * 24_000), dtype=np.float32)
    speech = clip.at(24_000).samples
    pcm = Clip(np.concatenate([silence[:7200], speech, silence]), 24_000).pcm16()
    served_voice.fake.queue_reply("Paris.")
    client = openai.AsyncOpenAI(
        base_url=served_voice.base_url, api_key=served_voice.keys["alice"], max_retries=0
    )
    async with client.realtime.connect(model="cozy") as conn:
        r = Reader(conn)
        await r.next()
        for piece in chunks(pcm):
            await conn.input_audio_buffer.append(audio=piece)
        await r.until("response.done", wait=120)
    heard = of(r.events, "conversation.item.input_audio_transcription.completed")
    assert heard, [e.type for e in r.events]
    assert wer(["what is the capital of france"], [heard[0].transcript]) == 0.0, heard[0]


def test_stt_websocket_whisper_utterances(served_voice: Served, piper_wav: Path) -> None:
    """/v1/audio/stt over a WebSocket: the VAD cuts utterances, Whisper transcribes each."""
    from websockets.sync.client import connect

    speech = decode(piper_wav).at(16_000).samples
    gap = np.zeros(int(1.0 * 16_000), dtype=np.float32)
    pcm = Clip(np.concatenate([speech, gap, speech, gap]), 16_000).pcm16()
    url = served_voice.url.replace("http://", "ws://") + "/v1/audio/stt?sample_rate=16000"
    events = []
    # no client keepalive: on a loaded 2-core machine a Whisper decode can outlast the
    # 20 s ping window while the frames wait in the socket
    with connect(url, additional_headers=served_voice.headers(), ping_interval=None) as ws:
        for i in range(0, len(pcm), 3200):  # 100 ms frames
            ws.send(pcm[i : i + 3200])
        ws.send("end")
        while True:
            event = json.loads(ws.recv(timeout=180))
            events.append(event)
            if event["type"] in ("done", "error"):
                break
    finals = [e["text"] for e in events if e["type"] == "final"]
    assert len(finals) == 2, events
    for text in finals:
        assert wer([SENTENCE], [text]) <= 0.15, events


def test_four_concurrent_first_requests_all_succeed(
    cozy_home: Path, fake_model: FakeModelServer, piper_wav: Path
) -> None:
    """A fresh server: nothing loaded. Two speech and two transcription requests at once
    (the report: 3 broken speech bodies and 3 x 502 'not initialised')."""
    thread, served = start_server(cozy_home, fake_model, VOICE_YAML)
    try:
        headers = served.headers()
        audio = piper_wav.read_bytes()

        async def speech(fmt: str) -> httpx.Response:
            async with httpx.AsyncClient(timeout=180) as http:
                return await http.post(
                    served.base_url + "/audio/speech",
                    json={"model": "tts-1", "voice": "alloy", "input": SENTENCE,
                          "response_format": fmt},
                    headers=headers,
                )  # fmt: skip

        async def transcribe() -> httpx.Response:
            async with httpx.AsyncClient(timeout=180) as http:
                return await http.post(
                    served.base_url + "/audio/transcriptions",
                    files={"file": ("a.wav", audio, "audio/wav")},
                    data={"model": "whisper-1"},
                    headers=headers,
                )

        async def race() -> list[httpx.Response]:
            return list(await asyncio.gather(speech("wav"), speech("mp3"), transcribe(),
                                             transcribe()))  # fmt: skip

        results = asyncio.run(race())
        for resp in results:
            assert resp.status_code == 200, resp.text
        wav_s = decoded_seconds("wav", results[0].content)
        assert abs(decoded_seconds("mp3", results[1].content) - wav_s) < 0.1
        assert 2.0 < wav_s < 5.0
        for resp in results[2:]:
            assert wer([SENTENCE], [json.loads(resp.text)["text"]]) <= 0.15, resp.text
    finally:
        thread.stop()


def test_long_unstreamed_speech_ends_at_the_deadline_with_a_504(
    tmp_path: Path, fake_model_session: FakeModelServer
) -> None:
    """A non-streamed /v1/audio/tts answers only when all of it is synthesised: Piper
    takes minutes on long text, so the server's speech deadline answers a 504 naming the
    ways out, instead of a client waiting with no byte."""
    thread, served = start_server(tmp_path, fake_model_session, VOICE_YAML, speech_timeout=1)
    try:
        long_text = " ".join(f"Sentence number {i} is spoken at an even pace." for i in range(60))
        reply = httpx.post(
            served.url + "/v1/audio/tts",
            json={"input": long_text},
            headers=served.headers(),
            timeout=120,
        )
        assert reply.status_code == 504, reply.text[:300]
        error = reply.json()["error"]
        assert error["code"] == "engine_timeout"
        assert "took longer than 1s" in error["message"]
        assert "stream=true" in error["message"]
        assert "COZY_SERVER_SPEECH_TIMEOUT" in error["message"]
        # the same server still speaks a short text in full
        short = httpx.post(
            served.url + "/v1/audio/tts",
            json={"input": "Hello there."},
            headers=served.headers(),
            timeout=120,
        )
        assert short.status_code == 200 and short.headers["content-type"] == "audio/wav"
        assert decode(short.content, what="reply").seconds > 0.3
    finally:
        thread.stop()
