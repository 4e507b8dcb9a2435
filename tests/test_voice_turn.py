"""A full voice turn (WAV in → orchestrator with the fake model → WAV out), barge-in,
the `cozy voice` command in file mode, and no-device behaviour."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import running, write_engines
from voice_support import COMMANDS, concat, espeak, needs_espeak, silence

from cozy.core.orchestrator import ChatRequest
from cozy.core.types import Caller
from cozy.engines.voice.audio import decode
from cozy.engines.voice.engine import LocalVoice
from cozy.engines.voice.io import WavSink, file_source
from cozy.engines.voice.pipeline import voice_turn
from cozy.runtime import Runtime
from cozy.testing import FakeModelServer

pytestmark = needs_espeak

GRAMMAR_YAML = (
    "voice:\n  provider: local\n  stt: {provider: pocketsphinx, grammar: "
    + json.dumps(COMMANDS)
    + "}\n"
)
# barge-in mechanics with the light voice: on a loaded machine Piper's first sentence can
# take longer than the 1.5 s before the "user" talks (bench_voice.py measures Piper)
BARGE_YAML = GRAMMAR_YAML + "  tts: {provider: espeak}\n"
LONG_ANSWER = " ".join(f"This is sentence number {i} of a long answer." for i in range(1, 13))


def asker(rt, session: str = "new"):  # type: ignore[no-untyped-def]
    from cozy.core.events import TextDelta

    async def ask(text: str):  # type: ignore[no-untyped-def]
        req = ChatRequest(prompt=text, caller=Caller(face="voice"), session=session)
        events = rt.orchestrator.run(req)
        try:
            async for event in events:
                if isinstance(event, TextDelta):
                    yield event.text
        finally:
            await events.aclose()

    return ask


async def test_voice_turn_from_wav_to_wav_is_persisted(
    cozy_home: Path, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    fake_model.add_rule(
        user_contains="kitchen lights", text="Turning on the kitchen lights. Anything else?"
    )
    async with running(cozy_home, fake_model.url, GRAMMAR_YAML) as rt:
        voice = await rt.engine("voice")
        assert isinstance(voice, LocalVoice)
        question = concat(silence(0.3, 22_050), espeak("turn on the kitchen lights"))
        out = tmp_path / "answer.wav"
        sink = WavSink(out, voice.output_rate)
        result = await voice_turn(voice, question, asker(rt), sink)
        await sink.close()
        assert result.status == "complete"
        assert result.transcript == "turn on the kitchen lights"
        assert result.answer == "Turning on the kitchen lights. Anything else?"
        t = result.timings
        assert t["transcript_s"] < t["first_token_s"] <= t["first_audio_s"] <= t["total_s"]
        spoken = decode(out)
        assert spoken.rate == 24_000 and 1.5 < spoken.seconds < 6.0
        # the words sent to the model were the transcript
        last_user = fake_model.turn_requests()[-1]["messages"][-1]
        assert last_user["content"] == "turn on the kitchen lights"
        sessions = await rt.store.list_sessions("local")
        rows = await rt.store.list_messages(sessions[0].id)
        assert [(r.role, r.content) for r in rows] == [
            ("user", "turn on the kitchen lights"),
            ("assistant", "Turning on the kitchen lights. Anything else?"),
        ]


async def test_barge_in_by_voice_from_a_file_source(
    cozy_home: Path, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    fake_model.queue_reply(LONG_ANSWER)
    fake_model.tokens_per_second = 15  # the answer is still streaming when the user talks
    async with running(cozy_home, fake_model.url, BARGE_YAML) as rt:
        voice = await rt.engine("voice")
        assert isinstance(voice, LocalVoice)
        question = concat(silence(0.3, 22_050), espeak("play some music"))
        # the "microphone" while cozy speaks: 1.5 s of quiet, then the user talks over it
        mic = tmp_path / "mic.wav"
        mic.write_bytes(concat(silence(1.5, 22_050), espeak("stop"), silence(1.0, 22_050)).wav())
        sink = WavSink(tmp_path / "answer.wav", voice.output_rate, realtime=True)
        listen = file_source(mic, realtime=True)
        result = await voice_turn(voice, question, asker(rt), sink, listen=listen)
        await sink.close()
        assert result.status == "interrupted"
        assert result.barge_in_latency is not None  # measured; the figure is in bench/
        played = decode(tmp_path / "answer.wav").seconds
        assert played < result.audio_seconds  # playback stopped before the end
        # stopped once the user spoke (1.5 s into the microphone), long before the ~33 s
        # answer ended; the upper bound leaves room for a loaded machine (bench/ measures)
        assert 1.0 < played + result.timings["first_audio_s"] < 12.0
        sessions = await rt.store.list_sessions("local")
        rows = await rt.store.list_messages(sessions[0].id)
        assert rows[-1].role == "assistant" and rows[-1].status == "interrupted"


async def test_barge_in_by_key_stops_playback(
    cozy_home: Path, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    fake_model.queue_reply(LONG_ANSWER)
    async with running(cozy_home, fake_model.url, GRAMMAR_YAML) as rt:
        voice = await rt.engine("voice")
        assert isinstance(voice, LocalVoice)
        sink = WavSink(tmp_path / "a.wav", voice.output_rate, realtime=True)
        press = asyncio.Event()

        async def press_once_playing() -> None:
            # not at a fixed time: on a loaded machine the answer may not be playing yet
            for _ in range(6000):  # up to ~60 s
                if sink.seconds >= 0.2:
                    break
                await asyncio.sleep(0.01)
            press.set()

        presser = asyncio.create_task(press_once_playing())
        question = concat(silence(0.3, 22_050), espeak("play some music"))
        result = await voice_turn(voice, question, asker(rt), sink, interrupt=press)
        await presser
        await sink.close()
        assert result.status == "interrupted"
        played = decode(tmp_path / "a.wav").seconds
        # pressed 0.2 s in: playback stopped at once, not at the end of the ~33 s answer
        # (the bound leaves room for a loaded machine)
        assert 0.2 <= played < 3.0, played
        assert sink.buffer.pending == 0


async def test_silent_input_is_no_speech(
    rt: Runtime, cozy_home: Path, fake_model: FakeModelServer
) -> None:
    voice = await rt.engine("voice")
    assert isinstance(voice, LocalVoice)
    sink = WavSink(cozy_home / "x.wav", voice.output_rate)
    result = await voice_turn(voice, silence(1.0, 16_000), asker(rt), sink)
    assert result.status == "no_speech" and fake_model.chat_requests() == []


def _cozy(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COZY_HOME": str(home), "COZY_CONFIG": str(home / "engines.yaml")}
    return subprocess.run(
        [sys.executable, "-m", "cozy", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_cli_file_mode_json(cozy_home: Path, fake_model: FakeModelServer, tmp_path: Path) -> None:
    fake_model.add_rule(user_contains="what time", text="It is noon. Have a nice day.")
    write_engines(cozy_home, fake_model.url, GRAMMAR_YAML)
    wav = tmp_path / "q.wav"
    wav.write_bytes(concat(silence(0.3, 22_050), espeak("what time is it")).wav())
    out = tmp_path / "a.wav"
    proc = _cozy(cozy_home, "voice", "--input", str(wav), "--output", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["transcript"] == "what time is it"
    assert data["answer"] == "It is noon. Have a nice day."
    assert data["session_id"] and data["message_id"]
    assert decode(out).seconds > 1.0
    again = _cozy(cozy_home, "sessions", "show", data["session_id"], "--json")
    assert "what time is it" in again.stdout


def test_cli_bad_input_file(cozy_home: Path, fake_model: FakeModelServer, tmp_path: Path) -> None:
    write_engines(cozy_home, fake_model.url)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really a wav file at all")
    proc = _cozy(cozy_home, "voice", "--input", str(bad), "--output", str(tmp_path / "o.wav"))
    assert proc.returncode == 2 and "could not decode" in proc.stderr
    assert "Traceback" not in proc.stderr
    missing = _cozy(cozy_home, "voice", "--input", str(tmp_path / "nope.wav"))
    assert missing.returncode == 2 and "no audio file" in missing.stderr


def _has_devices() -> bool:
    try:
        import sounddevice as sd

        return len(sd.query_devices()) > 0
    except OSError:
        return False


@pytest.mark.skipif(_has_devices(), reason="this machine has sound devices")
def test_no_device_gives_the_file_mode_hint(cozy_home: Path, fake_model: FakeModelServer) -> None:
    write_engines(cozy_home, fake_model.url)
    proc = _cozy(cozy_home, "voice")
    assert proc.returncode == 1
    assert "no microphone found" in proc.stderr and "--input" in proc.stderr
    devices = _cozy(cozy_home, "voice", "devices")
    assert devices.returncode == 1 and "--input" in devices.stdout + devices.stderr


def test_cli_json_without_output_or_speaker_answers_in_text(
    cozy_home: Path, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    """The report: `cozy voice --input q.wav --json` on a machine without a speaker."""
    fake_model.add_rule(user_contains="kitchen", text="The lights are on.")
    write_engines(cozy_home, fake_model.url, GRAMMAR_YAML)
    wav = tmp_path / "q.wav"
    wav.write_bytes(concat(silence(0.3, 22_050), espeak("turn on the kitchen lights")).wav())
    proc = _cozy(cozy_home, "voice", "--input", str(wav), "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["transcript"] == "turn on the kitchen lights"
    assert data["answer"] == "The lights are on." and data["audio_seconds"] == 0.0


def test_cli_without_the_voice_extra_names_the_install_command(
    cozy_home: Path, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    # the extra's modules made unimportable, as in an install without `--extras voice`
    code = (
        "import sys\n"
        "for m in ('soundfile', 'soxr', 'sounddevice'): sys.modules[m] = None\n"
        "from cozy.cli.app import main\n"
        "sys.argv = ['cozy', *sys.argv[1:]]\n"
        "main()\n"
    )
    write_engines(cozy_home, fake_model.url)
    env = {**os.environ, "COZY_HOME": str(cozy_home)}
    for args in (["voice", "--input", str(tmp_path / "q.wav")], ["voice"]):
        proc = subprocess.run(
            [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
            timeout=60,
        )  # fmt: skip
        assert proc.returncode == 1
        assert "Traceback" not in proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "./install.sh --extras voice" in lines[0], proc.stderr
