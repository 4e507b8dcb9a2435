"""`/v1/realtime` with the default offline voice (Whisper in, Piper out), through the
official openai client over a real WebSocket against the app on uvicorn:

- the session's chosen voice reaches Piper (a second Piper voice, given by path in
  `voice.tts.voices`, speaks at half speed: the same answer comes back twice as long),
  and an unknown voice is refused at `session.update`;
- Whisper partial transcripts while the user is still speaking
  (`conversation.item.input_audio_transcription.delta`), then the completed one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from realtime_helpers import Reader, audio_of, chunks, client, of, pcm24
from server_fixtures import Served, start_server
from voice_support import concat, espeak, needs_espeak, silence

from cozy.engines.voice.audio import Clip
from cozy.engines.voice.model_files import piper_voice
from cozy.testing import FakeModelServer

pytest.importorskip("piper", reason="the voice extra is not installed")
pytest.importorskip("faster_whisper", reason="the voice extra is not installed")
pytestmark = [needs_espeak, pytest.mark.timeout(180)]
RATE = 24_000


def slow_voice(where: Path) -> Path:
    """The packaged voice again, told (in its .onnx.json) to speak at half speed."""
    joe = piper_voice()
    slow = where / "slow-joe.onnx"
    slow.symlink_to(joe)
    config = json.loads(Path(str(joe) + ".json").read_text(encoding="utf-8"))
    config.setdefault("inference", {})["length_scale"] = 2.0 * float(
        config.get("inference", {}).get("length_scale", 1.0)
    )
    Path(str(slow) + ".json").write_text(json.dumps(config), encoding="utf-8")
    return slow


@pytest.fixture(name="served")
def served_fixture(
    cozy_home: Path, fake_model: FakeModelServer, tmp_path: Path
) -> Iterator[Served]:
    yaml = (
        "voice:\n  provider: local\n"
        "  stt: {provider: faster-whisper, language: en}\n"
        f"  tts: {{provider: piper, voices: {{slow: '{slow_voice(tmp_path)}'}}}}\n"
        "  partial_interval_ms: 500\n"
        "memory: {provider: none}\nprofile: {provider: none}\nknowledge: {provider: none}\n"
    )
    thread, info = start_server(cozy_home, fake_model, yaml)
    try:
        yield info
    finally:
        thread.stop()


async def spoken_answer(conn: object, r: Reader) -> bytes:
    await conn.conversation.item.create(  # type: ignore[attr-defined]
        item={
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "time?"}],
        }
    )
    await conn.response.create()  # type: ignore[attr-defined]
    events = await r.until("response.done", wait=120)
    assert events[-1].response.status == "completed", events[-1]
    return audio_of(events)


async def test_the_sessions_voice_reaches_piper(served: Served) -> None:
    served.fake.queue_reply("It is twelve o'clock.")
    served.fake.queue_reply("It is twelve o'clock.")
    async with client(served).realtime.connect(model="cozy") as conn:
        r = Reader(conn)
        created = (await r.next()).session
        assert created.audio.output.voice == "cozy"  # the configured voice
        await conn.session.update(
            session={"type": "realtime", "audio": {"input": {"turn_detection": None}}}
        )
        await r.until("session.updated")
        normal = await spoken_answer(conn, r)

        await conn.session.update(
            session={"type": "realtime", "audio": {"output": {"voice": "robot-9000"}}}
        )
        error = (await r.until("error"))[-1].error
        assert error.code == "invalid_value" and error.param == "session.audio.output.voice"
        assert "robot-9000" in error.message and "slow" in error.message  # names the choices
        # a client names voices; a file path (which Piper would load) is refused
        await conn.session.update(
            session={"type": "realtime", "audio": {"output": {"voice": str(piper_voice())}}}
        )
        error = (await r.until("error"))[-1].error
        assert error.param == "session.audio.output.voice" and "file path" in error.message

        await conn.session.update(
            session={"type": "realtime", "audio": {"output": {"voice": "slow"}}}
        )
        updated = (await r.until("session.updated"))[-1].session
        assert updated.audio.output.voice == "slow"
        slow = await spoken_answer(conn, r)
    seconds = len(normal) / 2 / RATE, len(slow) / 2 / RATE
    assert seconds[0] > 0.5, seconds
    assert 1.6 < seconds[1] / seconds[0] < 2.4, seconds  # the half-speed voice spoke it


async def test_whisper_partials_while_the_user_speaks(served: Served) -> None:
    served.fake.queue_reply("Paris.")
    sentence = "what is the capital of France and how many people live there"
    async with client(served).realtime.connect(model="cozy") as conn:
        r = Reader(conn)
        await r.next()
        await conn.session.update(
            session={
                "type": "realtime",
                "output_modalities": ["text"],
                "audio": {"input": {"transcription": {"model": "whisper-1", "language": "en"}}},
            }
        )
        await r.until("session.updated")
        for piece in chunks(pcm24(sentence, lead=0.5, tail=0.0)):
            await conn.input_audio_buffer.append(audio=piece)
        # no trailing silence yet: the turn stays open, so a partial must come first
        partial = await r.until("conversation.item.input_audio_transcription.delta", wait=120)
        for piece in chunks(Clip(silence(1.5, RATE).samples, RATE).pcm16()):
            await conn.input_audio_buffer.append(audio=piece)
        events = partial + await r.until("response.done", wait=120)
    kinds = [e.type for e in events]
    started = of(events, "input_audio_buffer.speech_started")[0]
    deltas = of(events, "conversation.item.input_audio_transcription.delta")
    completed = of(events, "conversation.item.input_audio_transcription.completed")[0]
    assert kinds.index("conversation.item.input_audio_transcription.delta") < kinds.index(
        "input_audio_buffer.speech_stopped"
    )
    assert {d.item_id for d in deltas} == {started.item_id} == {completed.item_id}
    # deltas append: joined, they are the start of what Whisper heard in the whole turn
    heard = "".join(d.delta for d in deltas).lower().split()
    final = completed.transcript.lower().replace("?", "").replace(",", "").split()
    assert heard and heard[0].strip("?,.") == final[0] == "what", (heard, final)
    assert kinds.index("conversation.item.input_audio_transcription.completed") > max(
        i for i, k in enumerate(kinds) if k == "conversation.item.input_audio_transcription.delta"
    )
    assert "what is the capital" in completed.transcript.lower()


def test_stt_websocket_whisper_partials_then_the_final(served: Served) -> None:
    """`/v1/audio/stt`: Whisper partials (re-decoded every 500 ms of speech in the
    background) arrive while the utterance is open; the final comes at its end."""
    from websockets.sync.client import connect

    speech = concat(silence(0.5, 22_050), espeak("what is the capital of France and where is it"))
    url = served.url.replace("http://", "ws://") + "/v1/audio/stt?sample_rate=16000"
    events = []
    with connect(url, additional_headers=served.headers()) as ws:
        pcm = speech.at(16_000).pcm16()
        for i in range(0, len(pcm), 3200):  # 100 ms frames, no trailing silence yet
            ws.send(pcm[i : i + 3200])
        while not any(e["type"] == "partial" for e in events):
            events.append(json.loads(ws.recv(timeout=120)))
        tail = silence(1.5, 16_000).pcm16()
        for i in range(0, len(tail), 3200):
            ws.send(tail[i : i + 3200])
        ws.send("end")
        while events[-1]["type"] not in ("done", "error"):
            events.append(json.loads(ws.recv(timeout=120)))
    kinds = [e["type"] for e in events]
    assert kinds[0] == "speech_started" and kinds[-1] == "done", kinds
    partials = [e["text"] for e in events if e["type"] == "partial"]
    finals = [e["text"] for e in events if e["type"] == "final"]
    assert len(finals) == 1 and kinds.index("partial") < kinds.index("final"), kinds
    assert partials[0].lower().split()[0].strip("?,.") == "what", partials
    assert "what is the capital" in finals[0].lower(), finals


async def test_the_personalitys_language_steers_whisper(served: Served) -> None:
    """A personality's `voice.language` is what Whisper listens for (forced German on an
    English question gives German words); the session's own transcription language wins."""
    profiles = served.home / "profiles"
    profiles.mkdir(exist_ok=True)
    (profiles / "deutsch.yaml").write_text(
        "id: deutsch\nname: Deutsch\nsystem_prompt: Antworte auf Deutsch.\nvoice: {language: de}\n",
        encoding="utf-8",
    )
    heard = []
    for transcription in (None, {"model": "whisper-1", "language": "en"}):
        served.fake.queue_reply("Paris.")
        async with client(served).realtime.connect(model="cozy/deutsch") as conn:
            r = Reader(conn)
            await r.next()
            audio: dict[str, object] = {"turn_detection": None}
            if transcription is not None:
                audio["transcription"] = transcription
            await conn.session.update(
                session={
                    "type": "realtime",
                    "output_modalities": ["text"],
                    "audio": {"input": audio},
                }
            )
            await r.until("session.updated")
            for piece in chunks(pcm24("what is the capital of France")):
                await conn.input_audio_buffer.append(audio=piece)
            await conn.input_audio_buffer.commit()
            await conn.response.create()
            events = await r.until("response.done", wait=120)
            heard.append(
                of(r.events, "conversation.item.input_audio_transcription.completed")[0].transcript
            )
            assert events[-1].response.status == "completed"
    german, english = (h.lower() for h in heard)
    assert "what is the capital" in english, heard
    assert "what is" not in german and "capital" not in german, heard
