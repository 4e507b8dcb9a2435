"""`cozy chat` through a real pseudo-terminal: key bursts (a paste without bracketed
paste mode, `tmux send-keys "text" Enter`), bracketed paste, and the approval modal's
Enter; each checked by what reached the (fake) model and what the screen shows."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import write_engines
from tui_helpers import QUIET
from tui_pty import ChatPty

from cozy.testing import FakeModelServer

SERVER = Path(__file__).parent / "mcp_servers" / "cozy_test_server.py"


@pytest.fixture
def chat(cozy_home: Path, fake_model: FakeModelServer) -> Iterator[ChatPty]:
    write_engines(cozy_home, fake_model.url, QUIET)
    term = ChatPty(cozy_home)
    try:
        term.ready()
        yield term
    finally:
        assert term.close() == 0, term.text[-1500:]


def prompts(fake: FakeModelServer) -> list[str]:
    return [r["messages"][-1]["content"] for r in fake.turn_requests()]


def test_text_and_enter_in_one_burst_sends(chat: ChatPty, fake_model: FakeModelServer) -> None:
    fake_model.queue_reply("burst answer")
    chat.send(b"hello from tmux\r")  # one write: one read by the app
    chat.expect("burst answer")
    assert prompts(fake_model) == ["hello from tmux"]


def test_unbracketed_multiline_paste_sends_once(chat: ChatPty, fake_model: FakeModelServer) -> None:
    fake_model.queue_reply("pasted answer")
    chat.send(b"first line\rsecond line\rthird line")  # the terminal's paste, as keys
    chat.read(1.0)
    assert prompts(fake_model) == []  # the newlines did not send the first line
    chat.send(b"\r")
    chat.expect("pasted answer")
    assert prompts(fake_model) == ["first line\nsecond line\nthird line"]


def test_bracketed_paste_keeps_newlines(chat: ChatPty, fake_model: FakeModelServer) -> None:
    fake_model.queue_reply("bracketed answer")
    chat.send(b"\x1b[200~alpha\rbeta\r\x1b[201~")
    chat.read(1.0)
    assert prompts(fake_model) == []
    chat.send(b"\r")
    chat.expect("bracketed answer")
    assert prompts(fake_model) == ["alpha\nbeta"]


def test_approval_enter_means_once(cozy_home: Path, fake_model: FakeModelServer) -> None:
    server = {"command": sys.executable, "args": [str(SERVER)]}
    write_engines(
        cozy_home,
        fake_model.url,
        QUIET + f"tools:\n  provider: mcp\n  servers:\n    t: {json.dumps(server)}\n",
    )
    profiles = cozy_home / "profiles"
    profiles.mkdir(parents=True, exist_ok=True)
    (profiles / "noter.yaml").write_text(
        "id: noter\nname: Noter\ndescription: writes notes\n"
        "system_prompt: You write notes.\ntools: ['t.*']\n"
        "context: {memory: false, profile: false, knowledge: false}\n",
        encoding="utf-8",
    )
    fake_model.queue_reply(tool_calls=[("t__write_note", {"text": "milk"})])
    fake_model.queue_reply("noted it")
    term = ChatPty(cozy_home, "-p", "noter")
    try:
        term.ready()
        term.send(b"note milk\r")
        term.expect(r"Allow t\.write_note")
        term.expect("enter: once")
        at = term.mark()
        term.send(b"\r")  # Enter: the focused button, Once
        term.expect("noted it", after=at)
        assert "once" in term.since(at)
        tool_msgs = [m for m in fake_model.turn_requests()[-1]["messages"] if m["role"] == "tool"]
        assert tool_msgs and "stored note #1" in tool_msgs[0]["content"]
    finally:
        assert term.close() == 0, term.text[-1500:]


def test_copy_reaches_the_terminal_and_ctrl_r_regenerates(
    chat: ChatPty, fake_model: FakeModelServer
) -> None:
    import base64

    fake_model.queue_reply("here:\n\n```python\nfirst()\n```\n")
    chat.send(b"show code\r")
    chat.expect(r"/copy 1")
    at = chat.mark()
    chat.send(b"/copy 1\r")
    chat.expect("copied block", after=at)  # the toast
    osc = b"\x1b]52;c;" + base64.b64encode(b"first()")
    assert osc in bytes(chat.raw[at:])  # what a terminal turns into its clipboard
    fake_model.queue_reply("a second answer")
    at = chat.mark()
    chat.send(b"\x12")  # ctrl+r
    chat.expect("a second answer", after=at)
    chat.expect("new branch", after=at)
    assert prompts(fake_model) == ["show code", "show code"]


def test_tab_then_esc_comes_back_to_the_prompt(chat: ChatPty, fake_model: FakeModelServer) -> None:
    fake_model.queue_reply("zebra-42")
    chat.send(b"\t")  # the focus moves on to the sidebar's search box
    chat.read(0.5)
    chat.send(b"\x1b")  # Esc alone (the terminal's escape delay tells it from a sequence)
    chat.read(0.8)
    chat.send(b"typed after esc\r")
    chat.until(lambda: prompts(fake_model) == ["typed after esc"], timeout=60)
