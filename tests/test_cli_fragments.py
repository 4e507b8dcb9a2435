"""`-f` fragments kept once by hash, and `cozy fragments list/show`: subprocesses
against the fake model server, on SQLite and on the local PostgreSQL."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from helpers import cozy, write_engines

from cozy.testing import FakeModelServer


@pytest.fixture
def env(cozy_home: Path, fake_model: FakeModelServer, db_url: str) -> dict[str, str]:
    write_engines(cozy_home, fake_model.url)
    return {} if db_url.startswith("sqlite") else {"COZY_DATABASE_URL": db_url}


def test_a_file_attached_twice_is_kept_once_and_shown_by_its_hash(
    env: dict[str, str], fake_model: FakeModelServer, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("the launch is on Tuesday\n")
    digest = hashlib.sha256(notes.read_text().encode()).hexdigest()

    r = cozy("fragments", "list", "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == []

    sids = []
    for question in ("when is the launch?", "which day again?"):
        r = cozy("run", "--json", "-f", str(notes), question, stdin="", env=env)
        assert r.returncode == 0, r.stderr
        sids.append(json.loads(r.stdout)["session_id"])

    listed = json.loads(cozy("fragments", "list", "--json", env=env).stdout)
    assert [(f["hash"], f["source"], f["size"]) for f in listed] == [
        (digest, str(notes), len("the launch is on Tuesday\n"))
    ]
    # the stored question is what the model saw, and its metadata names the fragment
    shown = json.loads(cozy("sessions", "show", sids[1], "--json", env=env).stdout)
    question = shown["messages"][0]
    assert "the launch is on Tuesday" in question["content"]
    assert question["content"].endswith("which day again?")
    assert [f["sha256"] for f in question["metadata"]["fragments"]] == [digest]

    for ref in (digest, digest[:8], digest[:8].upper()):
        r = cozy("fragments", "show", ref, env=env)
        assert r.returncode == 0, r.stderr
        assert r.stdout == "the launch is on Tuesday\n"

    table = cozy("fragments", "list", env=env)
    assert table.returncode == 0 and digest[:12] in table.stdout and "notes.txt" in table.stdout


def test_unknown_ambiguous_or_malformed_hashes_exit_2(
    env: dict[str, str], fake_model: FakeModelServer, tmp_path: Path
) -> None:
    texts = {}
    # two texts whose hashes share a first character, so that character is ambiguous
    for i in range(64):
        text = f"fragment {i}\n"
        texts.setdefault(hashlib.sha256(text.encode()).hexdigest()[0], []).append(text)
        if len(texts[hashlib.sha256(text.encode()).hexdigest()[0]]) == 2:
            break
    pair = next(v for v in texts.values() if len(v) == 2)
    for n, text in enumerate(pair):
        f = tmp_path / f"f{n}.txt"
        f.write_text(text)
        r = cozy("run", "--json", "-f", str(f), "hi", stdin="", env=env)
        assert r.returncode == 0, r.stderr
    first = hashlib.sha256(pair[0].encode()).hexdigest()[0]

    r = cozy("fragments", "show", first, env=env)
    assert r.returncode == 2 and "more than one" in r.stderr and "fragments list" in r.stderr
    missing = next(c for c in "0123456789abcdef" if c not in texts) * 10
    r = cozy("fragments", "show", missing, env=env)
    assert r.returncode == 2 and f"no fragment '{missing}'" in r.stderr
    r = cozy("fragments", "show", "not-a-hash", env=env)
    assert r.returncode == 2 and "not a fragment hash" in r.stderr
    assert r.stdout == ""
