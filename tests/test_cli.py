"""The CLI as a user runs it: a subprocess against the fake model server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import cozy, write_engines

from cozy.testing import FakeModelServer


@pytest.fixture
def configured(cozy_home: Path, fake_model: FakeModelServer) -> FakeModelServer:
    write_engines(cozy_home, fake_model.url)
    return fake_model


def test_run_json_from_args_and_stdin(configured: FakeModelServer) -> None:
    r = cozy("run", "--json", "What is 2+2?", stdin="")
    assert r.returncode == 0, r.stderr
    body = json.loads(r.stdout)
    assert body["text"] == "You said: What is 2+2?" and body["status"] == "complete"
    assert body["session_id"].startswith("ses_") and body["usage"]["total_tokens"] > 0
    r = cozy("run", "--json", stdin="summarise this")
    assert json.loads(r.stdout)["text"] == "You said: summarise this"
    r = cozy("run", "--json", "Context:", stdin="piped text")
    assert "Context:" in configured.turn_requests()[-1]["messages"][-1]["content"]
    assert "piped text" in configured.turn_requests()[-1]["messages"][-1]["content"]


def test_run_streams_text_and_json_lines(configured: FakeModelServer) -> None:
    r = cozy("run", "hello", "world", stdin="")
    assert r.returncode == 0 and r.stdout == "You said: hello world\n"
    r = cozy("run", "--json", "--stream", "hi", stdin="")
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    types = [line["type"] for line in lines]
    assert types[0] == "started" and types[-1] == "done" and "delta" in types
    assert "".join(x["text"] for x in lines if x["type"] == "delta") == lines[-1]["text"]


def test_sessions_commands(configured: FakeModelServer, tmp_path: Path) -> None:
    first = json.loads(cozy("run", "--json", "remember the milk", stdin="").stdout)
    sid = first["session_id"]
    cozy("run", "--session", "last", "and the eggs", stdin="")
    listed = json.loads(cozy("sessions", "list", "--json").stdout)
    assert [s["id"] for s in listed] == [sid] and listed[0]["messages"] == 4
    shown = json.loads(cozy("sessions", "show", sid, "--json").stdout)
    assert [m["content"] for m in shown["messages"]][::2] == ["remember the milk", "and the eggs"]
    out = tmp_path / "s.md"
    assert cozy("sessions", "export", "last", "--format", "md", "-o", str(out)).returncode == 0
    assert "## You" in out.read_text() and "and the eggs" in out.read_text()
    exported = json.loads(cozy("sessions", "export", sid, "--format", "json").stdout)
    assert exported["id"] == sid and len(exported["messages"]) == 4
    assert cozy("sessions", "rm", sid).returncode == 0
    assert json.loads(cozy("sessions", "list", "--json").stdout) == []
    assert cozy("sessions", "restore", sid).returncode == 0
    missing = cozy("sessions", "show", "ses_nope")
    assert missing.returncode == 2 and "cozy sessions list" in missing.stderr


def test_personalities_models_config(configured: FakeModelServer) -> None:
    names = {p["id"] for p in json.loads(cozy("personalities", "list", "--json").stdout)}
    assert {"assistant", "coder", "tutor"} <= names
    coder = json.loads(cozy("personalities", "show", "coder", "--json").stdout)
    assert coder["id"] == "coder" and coder["system_prompt"]
    models = json.loads(cozy("models", "--json").stdout)
    assert "ollama:fake-model" in [m["id"] for m in models]
    local = next(m for m in models if m["id"] == "local:smollm2-135m")  # beside: the GGUF files
    assert (
        local["context_window"] == 8192 and local["size"] > 9e7 and local["path"].endswith(".gguf")
    )
    shown = json.loads(cozy("config", "show", "--json").stdout)
    assert shown["engines"]["ai"]["provider"] == "ollama"
    assert "engines.yaml" in cozy("config", "path").stdout


def test_bad_engines_yaml_gives_file_line_field_and_exit_2(cozy_home: Path) -> None:
    (cozy_home / "engines.yaml").write_text("ai:\n  provider: ollama\n  timeout: soon\n")
    r = cozy("run", "hi", stdin="")
    assert r.returncode == 2
    assert f"{cozy_home / 'engines.yaml'}:3: ai.timeout" in r.stderr
    assert "Traceback" not in r.stderr
    r = cozy("--config", str(cozy_home / "missing.yaml"), "run", "hi", stdin="")
    assert r.returncode == 2 and "missing.yaml: file not found" in r.stderr


def test_unknown_personality_lists_known(configured: FakeModelServer) -> None:
    r = cozy("run", "--json", "-p", "pirate", "hi", stdin="")
    assert r.returncode == 2
    assert "unknown personality 'pirate'" in r.stderr and "assistant" in r.stderr
    assert json.loads(r.stdout)["error"]["code"] == "not_found"


def test_unreachable_model_is_actionable(cozy_home: Path) -> None:
    write_engines(cozy_home, "http://127.0.0.1:9")  # nothing listens on the discard port
    r = cozy("run", "hi", stdin="")
    assert r.returncode == 1
    assert "not reachable at http://127.0.0.1:9" in r.stderr and "ollama serve" in r.stderr
    assert "Traceback" not in r.stderr
    # the prompt is not lost: the session is out of the list (#22), and restorable
    assert "cozy sessions restore ses_" in r.stderr
    sid = r.stderr.split("cozy sessions restore ")[1].split("`")[0]
    assert cozy("sessions", "restore", sid).returncode == 0
    shown = json.loads(cozy("sessions", "show", "last", "--json").stdout)
    assert shown["messages"][0]["content"] == "hi"
    assert shown["messages"][-1]["status"] == "failed"
    doctor = cozy("doctor")
    assert doctor.returncode == 1 and "FAIL" in doctor.stdout and "ollama serve" in doctor.stdout


def test_empty_and_huge_prompts(configured: FakeModelServer) -> None:
    r = cozy("run", "--json", stdin="   \n")
    assert r.returncode == 2 and "prompt is empty" in r.stderr
    assert json.loads(r.stdout)["error"]["type"] == "invalid_request_error"
    big = "lorem ipsum " * 400_000  # ~4.8 MB on stdin
    r = cozy("run", "--json", stdin=big)
    assert r.returncode == 2 and "context budget" in r.stderr and "context_windows" in r.stderr
    assert configured.chat_requests() == []


def test_corrupt_database_is_left_alone(cozy_home: Path, configured: FakeModelServer) -> None:
    db = cozy_home / "cozy.db"
    db.write_bytes(b"garbage" * 1000)
    r = cozy("run", "hi", stdin="")
    assert r.returncode == 1 and "not a SQLite database" in r.stderr and "move it aside" in r.stderr
    assert db.read_bytes() == b"garbage" * 1000


def test_help_and_version() -> None:
    r = cozy("--help")
    assert r.returncode == 0 and "run" in r.stdout and "sessions" in r.stdout
    assert cozy("--version").stdout.startswith("cozy ")
    assert cozy("no-such-command").returncode == 2


def test_doctor_passes_with_the_default_engines(configured: FakeModelServer) -> None:
    # the voice self-test loads Whisper and Piper: a minute on a loaded 2-core machine
    r = cozy("doctor", "--json", timeout=300)
    checks = {c["name"]: c for c in json.loads(r.stdout)}
    failed = [c for c in checks.values() if c["status"] == "fail"]
    assert r.returncode == 0 and failed == [], failed
    for name in ("memory (local)", "profile (local)", "knowledge (local)", "embed (local)",
                 "voice (local)", "voice stt", "voice tts", "voice self-test"):  # fmt: skip
        assert checks[name]["status"] == "ok", checks[name]
    assert "stt=faster-whisper tts=piper" in checks["voice (local)"]["detail"]
    assert "905e5bf8336bcc62" in checks["voice stt"]["detail"]  # the verified model hash
    assert checks["model"]["status"] == "ok"
