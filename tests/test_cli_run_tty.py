"""`cozy run` on a real pseudo-terminal: a spinner before the first token, Markdown
rendered as it streams; plain text when piped, with --no-md, or TERM=dumb."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from helpers import cozy, write_engines

from cozy.testing import FakeModelServer

ANSWER = "# Plan\n\nSome **bold** words.\n\n- one\n- two\n\n```python\nprint('hi')\n```"


@pytest.fixture
def configured(cozy_home: Path, fake_model: FakeModelServer) -> FakeModelServer:
    write_engines(cozy_home, fake_model.url)
    fake_model.latency = 0.6  # long enough for the spinner to be drawn
    return fake_model


def on_pty(
    *args: str, env: dict[str, str] | None = None, interrupt_on: str | None = None
) -> tuple[int, str]:
    """Run `cozy ARGS` with stdin, stdout and stderr on a new pty (100x40); its output.
    `interrupt_on`: send SIGINT (Ctrl-C) once this text has been shown."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "cozy", *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env={**os.environ, "TERM": "xterm-256color", **(env or {})},
        close_fds=True,
        # a suite started in the background hands SIGINT ignored: give the default back
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    os.close(slave)
    out = bytearray()
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                out += data
                if interrupt_on and interrupt_on.encode() in out:
                    proc.send_signal(signal.SIGINT)
                    interrupt_on = None
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=30)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return code, out.decode("utf-8", "replace")


def test_markdown_and_a_spinner_on_a_terminal(configured: FakeModelServer) -> None:
    configured.queue_reply(ANSWER)
    code, out = on_pty("run", "make a plan")
    assert code == 0, out
    assert "thinking" in out  # the spinner, before the first token
    assert "\x1b[1mbold\x1b[0m" in out and "**bold**" not in out  # rendered, not raw
    assert "# Plan" not in out and "Plan" in out
    assert " • \x1b[0mone" in out and "```" not in out and "print" in out
    assert "\x1b[?25h" in out  # the cursor the spinner hid is shown again


def test_plain_on_a_terminal_with_no_md_or_dumb_term(configured: FakeModelServer) -> None:
    configured.queue_reply(ANSWER)
    code, out = on_pty("run", "--no-md", "make a plan")
    assert code == 0, out
    assert "**bold**" in out and "thinking" not in out and "\x1b[" not in out
    configured.queue_reply(ANSWER)
    code, out = on_pty("run", "make a plan", env={"TERM": "dumb"})
    assert code == 0 and "**bold**" in out and "thinking" not in out


def test_no_color_keeps_markdown_without_colours(configured: FakeModelServer) -> None:
    configured.queue_reply(ANSWER)
    code, out = on_pty("run", "make a plan", env={"NO_COLOR": "1"})
    assert code == 0, out
    assert "**bold**" not in out and " • " in out and "- one" not in out  # still rendered
    assert not re.search(r"\x1b\[(3[0-8]|4[0-8]|9[0-7])[;m]", out)  # no colour codes


def test_piped_output_is_the_answer_byte_for_byte(configured: FakeModelServer) -> None:
    configured.queue_reply(ANSWER)
    r = cozy("run", "make a plan", stdin="")
    assert r.returncode == 0 and r.stdout == ANSWER + "\n"


def test_ctrl_c_on_a_terminal_keeps_the_partial_answer(configured: FakeModelServer) -> None:
    configured.latency = 0
    configured.tokens_per_second = 4
    configured.queue_reply("First paragraph here.\n\nSecond one never ends " + "word " * 40)
    code, out = on_pty("run", "talk", interrupt_on="First paragraph")
    assert code == 130, out
    tail = out.split("\x1b[?25h")[-1]  # after the live area: the block being written
    assert "First paragraph" in tail or "Second one" in tail  # is printed for good
    assert "interrupted" in out
    assert out.rfind("\x1b[?25h") > out.rfind("\x1b[?25l")  # the cursor is visible again
