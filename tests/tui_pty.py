"""`cozy chat` in a real pseudo-terminal (stdlib pty): type bytes, read the screen.

Pilot drives the app from inside; these tests go through what a user's terminal does:
the kernel's tty, Textual's driver and input parser, bursts of keys in one read.
The screen is read as the text Textual wrote, with escape sequences removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

# Textual redraws only the cells that changed, so a text is found whole only when it
# was not on screen at that place before: tests look for distinctive words
_ESC = re.compile(
    rb"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b[()][0-9A-Za-z]|\x1b[=>]"
)


class ChatPty:
    def __init__(self, home: Path, *args: str, size: tuple[int, int] = (110, 32)) -> None:
        master, slave = os.openpty()
        cols, rows = size
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        env = {k: v for k, v in os.environ.items() if not k.startswith("COZY_")}
        env.update(COZY_HOME=str(home), TERM="xterm-256color", COZY_CLIPBOARD="osc52")
        self.master = master
        self.raw = bytearray()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cozy", "chat", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
        )
        os.close(slave)

    def read(self, seconds: float = 0.1) -> None:
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            ready, _, _ = select.select([self.master], [], [], max(left, 0))
            if ready:
                try:
                    self.raw.extend(os.read(self.master, 65536))
                except OSError:
                    return
            elif left <= 0:
                return

    @property
    def text(self) -> str:
        """Everything drawn so far, without escape sequences."""
        return _ESC.sub(b"", bytes(self.raw)).decode("utf-8", "replace")

    def mark(self) -> int:
        return len(self.raw)

    def since(self, mark: int) -> str:
        return _ESC.sub(b"", bytes(self.raw[mark:])).decode("utf-8", "replace")

    def expect(self, pattern: str, *, after: int = 0, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while not rx.search(self.since(after)):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{pattern!r} not on screen; saw {self.since(after)[-1500:]!r}"
                )
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"cozy chat exited {self.proc.returncode}: {self.text[-1500:]!r}"
                )
            self.read(0.1)

    def ready(self, model: str = "fake-model") -> None:
        """The prompt is drawn and the runtime open: the status line names the model the
        probe found (keys sent while start-up still holds the event loop are read late,
        in one chunk, and an Esc followed by text then reads as alt+key)."""
        self.expect("enter sends")
        self.expect(model)
        self.read(0.5)

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def until(self, predicate: object, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():  # type: ignore[operator]
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met; screen: {self.text[-1500:]!r}")
            self.read(0.1)

    def close(self) -> int:
        if self.proc.poll() is None:
            self.send(b"\x11")  # ctrl+q
            deadline = time.monotonic() + 20
            while self.proc.poll() is None and time.monotonic() < deadline:
                self.read(0.1)
        if self.proc.poll() is None:
            self.proc.kill()
        code = self.proc.wait(10)
        with contextlib.suppress(OSError):
            os.close(self.master)
        return code
