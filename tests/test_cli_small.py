"""Small CLI behaviours from #22, as a user runs them (subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import cozy, write_engines

from cozy.testing import FakeModelServer


@pytest.fixture
def configured(cozy_home: Path, fake_model: FakeModelServer) -> FakeModelServer:
    write_engines(cozy_home, fake_model.url)
    return fake_model


def test_unknown_personality_is_a_usage_error() -> None:
    r = cozy("personalities", "show", "nope")
    assert r.returncode == 2 and "known personalities" in r.stderr


def test_search_without_match_says_so(configured: FakeModelServer) -> None:
    assert cozy("run", "hello", stdin="").returncode == 0
    r = cozy("sessions", "list", "-q", "zzz-no-such-thing")
    assert r.returncode == 0 and "no session matches 'zzz-no-such-thing'" in r.stdout
    r = cozy("sessions", "summary", "last", "--regenerate")
    assert r.returncode == 0, r.stderr
    assert "--regenerate" not in r.stdout and "nothing to summarise" in r.stdout


def test_a_reader_that_stops_early_is_not_an_error(tmp_path: Path) -> None:
    for i in range(40):
        (tmp_path / f"note{i}.md").write_text(f"# Note {i}\n\nkey rotation step {i}\n")
    assert cozy("knowledge", "add", str(tmp_path)).returncode == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "cozy", "knowledge", "search", "key rotation", "-n", "40"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ),
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()  # like `| head -1`
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert first.strip() and proc.returncode == 0, err


def test_a_damaged_database_names_a_fix(configured: FakeModelServer, cozy_home: Path) -> None:
    assert cozy("run", "hello", stdin="").returncode == 0
    db = cozy_home / "cozy.db"
    with db.open("r+b") as fh:
        fh.seek(4096 * 3)
        fh.write(b"\xff" * 4096 * 4)
    r = cozy("run", "hello again", stdin="")
    assert r.returncode == 1 and ".recover" in r.stderr and "untouched" in r.stderr


def test_doctor_model_reachable_only_when_served(configured: FakeModelServer) -> None:
    r = cozy("doctor", env={"COZY_MODEL": "ollama:not-pulled"}, timeout=300)
    assert r.returncode == 1
    text = " ".join(r.stdout.split())  # rich wraps long lines
    assert "FAIL model: ollama:not-pulled: the server is up but does not serve" in text
    assert "fix: ollama pull not-pulled" in text
    # extras named in fixes keep their brackets (they are not rich markup)
    assert "uv pip install 'cozy'" not in text


def test_provider_keys_are_stored_privately_and_used(
    fake_model: FakeModelServer, cozy_home: Path
) -> None:
    (cozy_home / "engines.yaml").write_text(
        "ai:\n  provider: openai\n  model: fake-model\n"
        f"  providers: {{openai: {{base_url: '{fake_model.openai_base_url}', max_retries: 0}}}}\n",
        encoding="utf-8",
    )
    fake_model.api_key = "sk-stored-secret"
    r = cozy("keys", "set", "openai", stdin="sk-stored-secret\n")
    assert r.returncode == 0, r.stderr
    assert "sk-stored-secret" not in r.stdout + r.stderr
    path = cozy_home / "keys.json"
    assert path.stat().st_mode & 0o777 == 0o600
    listed = cozy("keys", "providers", "--json")
    assert "sk-stored" not in listed.stdout
    assert json.loads(listed.stdout) == [{"provider": "openai", "key": True, "source": "keys.json"}]
    r = cozy("run", "--json", "hi", stdin="")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["text"] == "You said: hi"
    assert cozy("keys", "unset", "openai").returncode == 0
    r = cozy("run", "--json", "hi", stdin="")
    assert r.returncode == 1 and "cozy keys set openai" in r.stderr


def test_config_set_models_default_and_aliases(
    configured: FakeModelServer, cozy_home: Path
) -> None:
    assert cozy("models", "default", "ollama:fake-embed").returncode == 0
    assert cozy("aliases", "set", "quick", "ollama:fake-model").returncode == 0
    assert cozy("config", "set", "context.recent_messages", "4").returncode == 0
    shown = json.loads(cozy("config", "show", "--json").stdout)["engines"]
    assert shown["ai"]["model"] == "ollama:fake-embed"
    assert shown["ai"]["aliases"]["quick"] == "ollama:fake-model"
    assert shown["context"]["recent_messages"] == 4
    assert shown["ai"]["providers"]["ollama"]["host"] == configured.url  # the rest is kept
    r = cozy("run", "--json", "hi", stdin="")
    assert json.loads(r.stdout)["model"] == "ollama:fake-embed"
    r = cozy("run", "--json", "-m", "quick", "hi", stdin="")
    assert json.loads(r.stdout)["model"] == "ollama:fake-model"
    before = (cozy_home / "engines.yaml").read_text()
    r = cozy("config", "set", "context.recent_messages", "lots")
    assert r.returncode == 2 and "recent_messages" in r.stderr and ".new" not in r.stderr
    assert (cozy_home / "engines.yaml").read_text() == before  # an invalid change is not kept
    assert json.loads(cozy("models", "--json").stdout)  # the listing still works


def _complete(words: str) -> list[str]:
    cli = Path(sys.executable).parent / "cozy"  # completion keys on the program's name
    env = {**os.environ, "_COZY_COMPLETE": "complete_bash", "COMP_WORDS": words}
    env["COMP_CWORD"] = str(len(words.split(" ")) - 1)
    out = subprocess.run([str(cli)], capture_output=True, text=True, env=env, timeout=60)
    return out.stdout.split()


def test_shell_completion_is_dynamic(configured: FakeModelServer) -> None:
    sid = json.loads(cozy("run", "--json", "hi", stdin="").stdout)["session_id"]
    assert _complete("cozy run -p co") == ["coder"]
    assert sid in _complete("cozy run -s ")
    assert "last" in _complete("cozy run -s ")
    assert cozy("aliases", "set", "speedy", "ollama:fake-model").returncode == 0
    assert "speedy" in _complete("cozy run -m sp")
    assert "--install-completion" in cozy("--help").stdout
