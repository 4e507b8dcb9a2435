"""`cozy chat` in a real pseudo-terminal: SIGTERM or SIGHUP mid-answer saves the partial
answer as interrupted and the app exits 128+signal."""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import assistant_rows, write_engines

from cozy.testing import FakeModelServer


def _read(master: int, seen: bytearray, until: float) -> None:
    while time.monotonic() < until:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                seen.extend(os.read(master, 65536))
            except OSError:
                return
        else:
            return


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_signal_to_cozy_chat_saves_the_partial_answer(
    sig: signal.Signals, cozy_home: Path, fake_model: FakeModelServer
) -> None:
    write_engines(cozy_home, fake_model.url)
    fake_model.tokens_per_second = 20
    fake_model.queue_reply(" ".join(f"w{i}" for i in range(400)))
    master, slave = os.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COZY_")}
    env.update(COZY_HOME=str(cozy_home), TERM="xterm-256color", COLUMNS="120", LINES="40")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cozy", "chat"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    seen = bytearray()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and b"enter sends" not in seen:  # drawn, focused
            _read(master, seen, time.monotonic() + 0.5)
        assert b"enter sends" in seen, bytes(seen[-1500:])
        time.sleep(0.5)
        os.write(master, b"tell me a long story")
        time.sleep(0.3)
        os.write(master, b"\r")
        deadline = time.monotonic() + 60
        next_enter = time.monotonic() + 5
        while not fake_model.turn_requests() and time.monotonic() < deadline:
            _read(master, seen, time.monotonic() + 0.2)
            if time.monotonic() > next_enter:  # a cold start may still be wiring the prompt
                os.write(master, b"\r")  # an empty prompt is ignored once it was sent
                next_enter = time.monotonic() + 5
        assert fake_model.turn_requests(), bytes(seen[-1500:])
        time.sleep(1.5)  # some words are on screen, most are still to come
        _read(master, seen, time.monotonic() + 0.2)
        proc.send_signal(sig)
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            _read(master, seen, time.monotonic() + 0.2)
        assert proc.poll() == 128 + sig, (proc.poll(), bytes(seen[-1500:]))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        with contextlib.suppress(OSError):
            os.close(master)
    rows = asyncio.run(assistant_rows(cozy_home))
    assert [r.status for r in rows] == ["interrupted"], [(r.status, r.content[:30]) for r in rows]
    assert rows[0].content.startswith("w0 w1") and not rows[0].content.endswith("w399")
