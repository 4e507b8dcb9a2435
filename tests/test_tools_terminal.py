"""The approval prompt in a real pseudo-terminal: y, a, n and Ctrl-C, stdin a pipe or
the terminal; after Ctrl-C in a tool call the session's history stays valid and the
interrupted call is audited."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from tools_cli import configured, cozy  # noqa: F401 - the fixture is used by name
from tty_helpers import TtyCozy

from cozy.settings import Settings
from cozy.storage.store import Store
from cozy.testing import FakeModelServer

PROMPT = r"allow\? \[y\] once / \[a\] always"


def _audit(home: Path) -> list[dict[str, Any]]:
    async def go() -> list[dict[str, Any]]:
        store = await Store.open(Settings(home=home).db_url)
        try:
            return await store.list_audit(limit=50)
        finally:
            await store.close()

    return asyncio.run(go())


def test_yes_once_with_stdin_a_pipe(
    configured: FakeModelServer,  # noqa: F811
    cozy_home: Path,
    tmp_path: Path,
) -> None:
    configured.queue_reply(tool_calls=[("test__write_note", {"text": "from the pipe"})])
    configured.queue_reply("noted")
    t = TtyCozy(
        ["run", "-p", "tester", "--allow-tools", "test.*"],
        tmp_path / "out",
        stdin=b"save what I piped in",
    )
    try:
        screen = t.expect(PROMPT)
        assert "test.write_note" in screen and "a write tool" in screen
        assert "from the pipe" in screen and "personality 'tester'" in screen
        t.send(b"y\n")
        assert t.wait() == 0, t.terminal
    finally:
        t.close()
    assert t.stdout.strip() == "noted"
    [row] = [r for r in _audit(cozy_home) if r["tool"] == "test.write_note"]
    assert (row["decision"], row["status"]) == ("once", "ok")
    assert row["detail"]["approver"]["by"] == "the user, once"
    assert row["detail"]["approver"]["face"] == "cli"
    assert "from the pipe" in row["detail"]["arguments"]
    assert row["detail"]["result"] == "stored note #1"


def test_always_then_no_prompt(configured: FakeModelServer, tmp_path: Path) -> None:  # noqa: F811
    t = TtyCozy(["tools", "call", "test.write_note", "text=one", "-p", "tester"], tmp_path / "o1")
    try:
        t.expect(PROMPT)
        t.send(b"a\n")
        assert t.wait() == 0, t.terminal
    finally:
        t.close()
    assert t.stdout == "stored note #1\n"
    # remembered for this personality: the next call runs without asking
    r = cozy("tools", "call", "test.write_note", "text=two", "-p", "tester", "--json")
    body = json.loads(r.stdout)
    assert (body["decision"], body["is_error"]) == ("always", False), r.stderr
    r = cozy("tools", "grants", "--json")
    assert [(g["tool"], g["personality"]) for g in json.loads(r.stdout)] == [
        ("test.write_note", "tester")
    ]


def test_no_denies(configured: FakeModelServer, tmp_path: Path) -> None:  # noqa: F811
    t = TtyCozy(["tools", "call", "test.fetch", "url=http://example.com"], tmp_path / "o")
    try:
        screen = t.expect(PROMPT)
        assert "a network tool" in screen
        t.send(b"n\n")
        assert t.wait() == 1
    finally:
        t.close()
    assert "denied" in t.terminal and "you answered no" in t.terminal
    assert t.stdout == ""


def test_ctrl_c_at_the_prompt_keeps_the_session_valid(
    configured: FakeModelServer,  # noqa: F811
    cozy_home: Path,
    tmp_path: Path,
) -> None:
    configured.queue_reply("let me save that", tool_calls=[("test__write_note", {"text": "x"})])
    t = TtyCozy(
        ["run", "--json", "-p", "tester", "--allow-tools", "test.*", "save x"], tmp_path / "o"
    )
    try:
        t.expect(PROMPT)
        t.send(b"\x03")  # Ctrl-C: the terminal sends SIGINT to cozy
        assert t.wait() == 130, t.terminal
    finally:
        t.close()
    body = json.loads(t.stdout)  # --json still prints its object
    assert body["status"] == "interrupted" and body["session_id"]
    assert body["text"] == "let me save that"
    assert [c["name"] for c in body["tool_calls"]] == ["test.write_note"]
    rows = [r for r in _audit(cozy_home) if r["tool"] == "test.write_note"]
    assert [(r["status"], r["decision"]) for r in rows] == [("interrupted", "pending")]
    # the next turn sends a sequence an OpenAI-style API accepts
    configured.queue_reply("ok, not saved")
    # (through the OpenAI API this time: it rejects a tool call without its result)
    r = cozy(
        "run", "--json", "-s", "last", "-p", "tester", "-m", "openai:fake-model", "what happened?"
    )
    assert r.returncode == 0, r.stderr
    messages = configured.turn_requests()[-1]["messages"]
    roles = [m["role"] for m in messages]
    i = next(k for k, m in enumerate(messages) if m.get("tool_calls"))
    call_id = messages[i]["tool_calls"][0]["id"]
    assert messages[i + 1]["role"] == "tool" and messages[i + 1]["tool_call_id"] == call_id
    assert "interrupted" in messages[i + 1]["content"]
    assert roles[-1] == "user" and messages[-1]["content"] == "what happened?"
    for m in messages:  # no empty assistant message
        assert m["role"] != "assistant" or m.get("content") or m.get("tool_calls")


def _wait_for(path: Path, word: str, t: TtyCozy, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not (path.exists() and word in path.read_text()):
        assert time.monotonic() < deadline, f"no {word!r} in {path}; terminal: {t.terminal}"
        assert t.proc.poll() is None, t.terminal
        time.sleep(0.05)


def test_ctrl_c_in_tools_call_cancels_it_on_the_server(
    configured: FakeModelServer,  # noqa: F811
    cozy_home: Path,
    tmp_path: Path,
) -> None:
    marker = tmp_path / "marker"
    t = TtyCozy(
        ["tools", "call", "--json", "test.wait", "seconds=120", f"marker={marker}"],
        tmp_path / "o",
    )
    try:
        _wait_for(marker, "started", t)
        t.send(b"\x03")
        assert t.wait() == 130, t.terminal
    finally:
        t.close()
    # the server saw notifications/cancelled before cozy stopped it
    assert marker.read_text().split() == ["started", "cancelled"]
    rows = [r for r in _audit(cozy_home) if r["tool"] == "test.wait"]
    assert [r["status"] for r in rows] == ["interrupted"]


def test_ctrl_c_in_a_turns_tool_call_cancels_it_on_the_server(
    configured: FakeModelServer,  # noqa: F811
    cozy_home: Path,
    tmp_path: Path,
) -> None:
    marker = tmp_path / "marker"
    configured.queue_reply(tool_calls=[("test__wait", {"seconds": 120, "marker": str(marker)})])
    t = TtyCozy(["run", "--json", "-p", "tester", "wait for it"], tmp_path / "o")
    try:
        _wait_for(marker, "started", t)
        t.send(b"\x03")
        assert t.wait() == 130, t.terminal
    finally:
        t.close()
    assert marker.read_text().split() == ["started", "cancelled"]
    body = json.loads(t.stdout)
    assert body["status"] == "interrupted"
    rows = [r for r in _audit(cozy_home) if r["tool"] == "test.wait"]
    assert [(r["status"], r["decision"]) for r in rows] == [("interrupted", "auto")]
