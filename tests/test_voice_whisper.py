"""The default recogniser (faster-whisper, whisper-base int8) against a generated speech set.

A slice of cozy.testing.voice_eval (espeak-ng in two voices and Piper, 4 sentences
each) is transcribed by Whisper and by pocketsphinx; Whisper's word error rate must
be under a generous bound and below pocketsphinx's on the same audio. The full set
runs in bench/bench_voice.py. The models load once per module.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import write_engines
from voice_support import needs_espeak

from cozy.core.errors import EngineError
from cozy.engines.voice.engine import LocalVoice
from cozy.engines.voice.model_files import WHISPER_BASE, assemble, sha256_file
from cozy.engines.voice.providers import make_stt, make_tts
from cozy.engines.voice.stt import PocketSphinxSTT
from cozy.engines.voice.stt_whisper import FasterWhisperSTT
from cozy.testing import FakeModelServer, voice_eval

pytestmark = needs_espeak

WHISPER_WER_BOUND = 0.25  # measured 0.0-0.05 on this slice; generous for other CPUs


@pytest.fixture(scope="module")
def whisper() -> FasterWhisperSTT:
    return FasterWhisperSTT({"language": "en"})


@pytest.fixture(scope="module")
def eval_set() -> list[voice_eval.Sample]:
    return voice_eval.samples(per_speaker=4)


def test_packaged_model_is_assembled_and_verified(whisper: FasterWhisperSTT) -> None:
    weights = whisper.model_dir / "model.bin"
    assert weights.stat().st_size == WHISPER_BASE.size
    assert sha256_file(weights) == WHISPER_BASE.sha256
    for name in ("config.json", "tokenizer.json", "vocabulary.json"):
        assert (whisper.model_dir / name).is_file()


def test_assembly_into_a_fresh_directory_checks_the_hash(tmp_path: Path) -> None:
    target = assemble(root=tmp_path)
    assert sha256_file(target / "model.bin") == WHISPER_BASE.sha256
    assert (target / "model.bin.sha256").read_text().startswith(WHISPER_BASE.sha256)
    # a corrupted file is detected (size kept, content changed) and reassembled
    with (target / "model.bin").open("r+b") as fh:
        fh.seek(1000)
        fh.write(b"\0" * 16)
    (target / "model.bin.sha256").unlink()
    assert sha256_file(assemble(root=tmp_path) / "model.bin") == WHISPER_BASE.sha256


def test_whisper_word_error_rate_beats_pocketsphinx(
    whisper: FasterWhisperSTT, eval_set: list[voice_eval.Sample]
) -> None:
    sphinx = PocketSphinxSTT({})
    refs = [s.text for s in eval_set]
    heard_whisper = [whisper.transcribe(s.clip.samples) for s in eval_set]
    heard_sphinx = [sphinx.transcribe(s.clip.samples) for s in eval_set]
    w_wer = voice_eval.wer(refs, heard_whisper)
    s_wer = voice_eval.wer(refs, heard_sphinx)
    detail = "\n".join(
        f"{s.speaker}: {s.text!r} -> whisper {w!r} / sphinx {p!r}"
        for s, w, p in zip(eval_set, heard_whisper, heard_sphinx, strict=True)
    )
    assert w_wer < WHISPER_WER_BOUND, f"whisper WER {w_wer:.3f}\n{detail}"
    assert w_wer < s_wer, f"whisper {w_wer:.3f} vs pocketsphinx {s_wer:.3f}\n{detail}"
    for speaker in {s.speaker for s in eval_set}:  # every voice, not just the easy one
        pairs = [(s.text, w) for s, w in zip(eval_set, heard_whisper, strict=True)
                 if s.speaker == speaker]  # fmt: skip
        assert voice_eval.wer(*zip(*pairs, strict=True)) < 0.4, f"{speaker}\n{detail}"


def test_auto_language_and_word_timings(
    whisper: FasterWhisperSTT, eval_set: list[voice_eval.Sample]
) -> None:
    sample = next(s for s in eval_set if s.speaker == "piper joe")
    result = whisper.transcribe_detailed(sample.clip.samples, language="auto", words=True)
    assert result.language == "en"
    assert voice_eval.wer([sample.text], [result.text]) <= 0.2, result.text
    words = [w for seg in result.segments for w in seg.words]
    assert len(words) >= len(sample.text.split()) - 1
    starts = [w.start for w in words]
    assert starts == sorted(starts) and 0.0 <= starts[0] < words[-1].end <= result.duration + 0.1


def test_wer_scoring() -> None:
    assert voice_eval.wer(["turn on the lights"], ["Turn on the lights."]) == 0.0
    assert voice_eval.wer(["turn on the lights"], ["turn the light"]) == 0.5
    assert voice_eval.wer(["a b"], [""]) == 1.0


def test_fallbacks_are_reported_and_explicit_paths_fail(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-voice.onnx")
    with pytest.raises(EngineError, match="no Piper voice"):
        make_tts({"provider": "piper", "model": missing})
    with pytest.raises(EngineError, match=r"model\.bin missing"):
        make_stt({"provider": "faster-whisper", "model_path": str(tmp_path)})
    # the packaged default falls back to the light engine and says why
    stt = make_stt({"provider": "faster-whisper", "compute_type": "not-a-type"})
    assert stt.name == "pocketsphinx" and "faster-whisper unavailable" in stt.fallback_reason
    with pytest.raises(EngineError):
        make_stt({"provider": "faster-whisper", "compute_type": "bad", "fallback": "none"})


def test_other_whisper_and_piper_models_by_path(
    whisper: FasterWhisperSTT, eval_set: list[voice_eval.Sample], tmp_path: Path
) -> None:
    """`model_path`: any CTranslate2 Whisper directory (here a copy of whisper-base under
    another name, linked file by file); `model`: any Piper .onnx voice (here the joe
    voice with its .onnx.json set to half speed), each used instead of the packaged one."""
    import json

    from cozy.engines.voice.model_files import piper_voice

    mine = tmp_path / "my-whisper"
    mine.mkdir()
    for item in whisper.model_dir.iterdir():
        if item.is_file() and not item.name.endswith(".sha256"):
            (mine / item.name).symlink_to(item)
    stt = make_stt({"provider": "faster-whisper", "model_path": str(mine), "language": "en"})
    assert stt.name == "faster-whisper" and stt.model_dir == mine and not stt.fallback_reason
    sample = eval_set[0]
    assert voice_eval.wer([sample.text], [stt.transcribe(sample.clip.samples)]) <= 0.25

    joe = piper_voice()
    slow = tmp_path / "voices" / "slow-joe.onnx"
    slow.parent.mkdir()
    slow.symlink_to(joe)
    config = json.loads(Path(str(joe) + ".json").read_text(encoding="utf-8"))
    inference = config.setdefault("inference", {})
    inference["length_scale"] = 2.0 * float(inference.get("length_scale", 1.0))
    Path(str(slow) + ".json").write_text(json.dumps(config), encoding="utf-8")
    text = "The lights in the kitchen are on."
    normal = make_tts({"provider": "piper", "noise_w": 0}).synthesize(text)
    by_path = make_tts({"provider": "piper", "model": str(slow), "noise_w": 0})
    assert by_path.name == "piper" and by_path.model == slow and not by_path.fallback_reason
    assert 1.6 < by_path.synthesize(text).seconds / normal.seconds < 2.4


async def test_engine_initialises_once_under_concurrent_first_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import cozy.engines.voice.engine as engine_module

    loads: list[str] = []
    real = engine_module.make_stt

    def counting(options: dict[str, object] | None) -> object:
        loads.append("stt")
        return real(options)

    monkeypatch.setattr(engine_module, "make_stt", counting)
    engine = LocalVoice({"stt": {"provider": "pocketsphinx"}})
    await asyncio.gather(*(engine.initialize() for _ in range(4)))
    assert loads == ["stt"]  # four first callers, one load
    assert (await engine.health_check()).ok
    await engine.close()


def test_doctor_fails_voice_when_recognition_is_broken(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    """The report: `cozy doctor` said `ok voice` while nothing was understood. A command
    grammar that cannot say the self-test sentence stands in for a broken recogniser."""
    write_engines(
        cozy_home,
        fake_model.url,
        'voice:\n  provider: local\n  stt: {provider: pocketsphinx, grammar: ["stop", "pause"]}\n',
    )
    env = {**os.environ, "COZY_HOME": str(cozy_home)}
    proc = subprocess.run(
        [sys.executable, "-m", "cozy", "doctor", "--json"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    checks = {c["name"]: c for c in json.loads(proc.stdout)}
    assert proc.returncode == 1
    assert checks["voice (local)"]["status"] == "fail", checks["voice (local)"]
    test = checks["voice self-test"]
    assert test["status"] == "fail" and "recognition is broken" in test["detail"], test
    assert "provider: faster-whisper" in test["fix"]  # the fix names the setting
