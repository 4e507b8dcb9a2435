"""`-f` fragments kept once by hash, and `cozy fragments list/show`: subprocesses
against the fake model server, on SQLite and on the local PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from helpers import cozy, write_engines

from cozy.settings import Settings
from cozy.storage.db import create_engine
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
    assert listed[0]["messages"] == 2  # two stored questions carry it
    # read back, the question is what the model saw, and its metadata names the fragment
    shown = json.loads(cozy("sessions", "show", sids[1], "--json", env=env).stdout)
    question = shown["messages"][0]
    assert (
        question["content"] == f"{notes}:\n```\nthe launch is on Tuesday\n```\n\nwhich day again?"
    )
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


def db_url_of(cozy_home: Path, env: dict[str, str]) -> str:
    return env.get("COZY_DATABASE_URL") or Settings(home=cozy_home).db_url


def scan(url: str, marker: str) -> dict[str, int]:
    """Across every text column of every table of the database: how many rows hold
    `marker`, by table; plus the bytes (UTF-8) in messages.content and
    fragments.content."""

    async def go() -> dict[str, int]:
        engine = create_engine(url)  # cozy's own: the driver its URL forms mean
        try:
            async with engine.connect() as conn:

                def count(sync: sa.Connection) -> dict[str, int]:
                    meta = sa.MetaData()
                    meta.reflect(sync)
                    out: dict[str, int] = {}
                    for table in meta.sorted_tables:
                        cols = [
                            c
                            for c in table.columns
                            if isinstance(c.type, sa.String | sa.Text | sa.JSON)
                            or c.type.__class__.__name__ == "JSONB"
                        ]
                        if not cols or "_fts" in table.name:
                            continue
                        hit = sa.or_(*(sa.cast(c, sa.Text).contains(marker) for c in cols))
                        n = sync.scalar(sa.select(sa.func.count()).select_from(table).where(hit))
                        if n:
                            out[table.name] = int(n)
                    length = (
                        "LENGTH(CAST(content AS BLOB))"
                        if sync.dialect.name == "sqlite"
                        else "OCTET_LENGTH(content)"
                    )
                    for table in ("messages", "fragments"):
                        total = f"SELECT COALESCE(SUM({length}), 0) FROM {table}"
                        out[f"{table}_bytes"] = int(sync.scalar(sa.text(total)))
                    return out

                return await conn.run_sync(count)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def test_a_file_attached_in_three_runs_is_stored_once(
    env: dict[str, str], fake_model: FakeModelServer, cozy_home: Path, tmp_path: Path
) -> None:
    marker = "zebra-quartz-17"
    body = "".join(f"line {i}: the {marker} ledger says {i * 7}\n" for i in range(400))
    big = tmp_path / "ledger.txt"
    big.write_text(body)
    size = len(body.encode())
    assert size > 15_000

    questions = ["what is on line 3?", "and line 9?", "sum lines 1-2"]
    flags = [["-f", str(big)], [f"@{big}"], ["-a", str(big)]]  # the three ways in
    sids = []
    for question, flag in zip(questions, flags, strict=True):
        words = [f"{flag[0]} {question}"] if flag[0].startswith("@") else [*flag, question]
        fake_model.queue_reply("it says 21")  # (the default answer echoes the question)
        r = cozy("run", "--json", *words, stdin="", env=env)
        assert r.returncode == 0, r.stderr
        sids.append(json.loads(r.stdout)["session_id"])
        sent = next(
            m for m in reversed(fake_model.turn_requests()[-1]["messages"]) if m["role"] == "user"
        )["content"]
        assert body.rstrip() in sent and sent.endswith(question)  # the model got the file

    found = scan(db_url_of(cozy_home, env), marker)
    # the text is in one row of one table: the fragment, not the three questions
    assert {k: v for k, v in found.items() if not k.endswith("_bytes")} == {"fragments": 1}
    assert found["fragments_bytes"] == size
    # the three questions and three answers together are far smaller than one copy
    assert found["messages_bytes"] < 2_000, found
    listed = json.loads(cozy("fragments", "list", "--json", env=env).stdout)
    assert [(f["size"], f["messages"]) for f in listed] == [(len(body), 3)]

    # every way of reading the conversation back has the whole question again
    for sid, question in zip(sids, questions, strict=True):
        shown = json.loads(cozy("sessions", "show", sid, "--json", env=env).stdout)
        content = shown["messages"][0]["content"]
        assert body.rstrip() in content and content.endswith(question)
    r = cozy("sessions", "export", sids[0], "--format", "md", env=env)
    assert r.returncode == 0, r.stderr
    assert f"{marker} ledger says 2793" in r.stdout  # the last line of the file


def test_a_continued_session_sends_the_fragment_again(
    env: dict[str, str], fake_model: FakeModelServer, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.md"
    notes.write_text("# Plan\nship the `cozy` release on Friday\n")
    r = cozy("run", "--json", "-f", str(notes), "when do we ship?", stdin="", env=env)
    assert r.returncode == 0, r.stderr
    first = [m for m in fake_model.turn_requests()[-1]["messages"] if m["role"] != "system"]

    r = cozy("run", "--json", "-c", "and what do we ship?", stdin="", env=env)
    assert r.returncode == 0, r.stderr
    convo = [m for m in fake_model.turn_requests()[-1]["messages"] if m["role"] != "system"]
    # the history is the first turn exactly as the model saw it, then the new question
    assert convo[0] == first[0]
    assert convo[0]["content"] == (
        f"{notes}:\n```\n# Plan\nship the `cozy` release on Friday\n```\n\nwhen do we ship?"
    )
    assert [m["role"] for m in convo] == ["user", "assistant", "user"]
    assert convo[2]["content"] == "and what do we ship?"


def test_a_fragment_alone_is_a_question_titled_by_its_source(
    env: dict[str, str], fake_model: FakeModelServer, tmp_path: Path
) -> None:
    notes = tmp_path / "todo.txt"
    notes.write_text("buy milk\n")
    r = cozy("run", "--json", "-f", str(notes), stdin="", env=env)
    assert r.returncode == 0, r.stderr
    sent = fake_model.turn_requests()[-1]["messages"][-1]["content"]
    assert sent == f"{notes}:\n```\nbuy milk\n```"
    listed = json.loads(cozy("sessions", "list", "--json", env=env).stdout)
    assert [s["title"] for s in listed] == [str(notes)]
    shown = json.loads(cozy("sessions", "show", listed[0]["id"], "--json", env=env).stdout)
    assert shown["messages"][0]["content"] == sent
