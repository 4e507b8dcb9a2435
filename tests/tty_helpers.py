"""Run cozy with a real pseudo-terminal as its controlling terminal (stdlib pty only).

stdout goes to a file (so `--json` output can be parsed), stdin is a pipe or the
terminal, stderr and /dev/tty are the terminal the test reads and types into.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import select
import signal
import subprocess
import sys
import termios
import time
from pathlib import Path


class TtyCozy:
    def __init__(self, args: list[str], out: Path, stdin: bytes | None = None) -> None:
        master, slave = os.openpty()
        self.master = master
        self.seen = b""
        self.out_path = out

        def make_controlling() -> None:  # runs in the child after setsid()
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
            # a test run started in the background (`cmd &`) inherits SIGINT ignored, and
            # Python then never raises KeyboardInterrupt: give cozy a terminal's default
            signal.signal(signal.SIGINT, signal.SIG_DFL)

        stdin_arg: int
        stdin_arg = slave if stdin is None else subprocess.PIPE
        self.out = out.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cozy", *args],
            stdin=stdin_arg,
            stdout=self.out,
            stderr=slave,
            start_new_session=True,
            preexec_fn=make_controlling,
            pass_fds=(slave,),
            env=dict(os.environ),
        )
        os.close(slave)
        if stdin is not None:
            assert self.proc.stdin is not None
            self.proc.stdin.write(stdin)
            self.proc.stdin.close()

    def expect(self, pattern: str, timeout: float = 60.0) -> str:
        """Read the terminal until `pattern` (a regex) shows up; returns what was read."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern.encode())
        while not rx.search(self.seen):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {pattern!r} on the terminal; saw {self.seen[-2000:]!r}")
            ready, _, _ = select.select([self.master], [], [], min(left, 0.5))
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:  # the child closed the terminal
                    chunk = b""
                if not chunk and self.proc.poll() is not None:
                    raise AssertionError(
                        f"cozy exited ({self.proc.returncode}) before {pattern!r}; "
                        f"saw {self.seen[-2000:]!r}"
                    )
                self.seen += chunk
        return self.seen.decode("utf-8", "replace")

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def wait(self, timeout: float = 90.0) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                with contextlib.suppress(OSError):
                    self.seen += os.read(self.master, 4096)
        code = self.proc.wait(timeout=max(deadline - time.monotonic(), 1))
        self.close()
        return code

    @property
    def stdout(self) -> str:
        return self.out_path.read_text(encoding="utf-8")

    @property
    def terminal(self) -> str:
        return self.seen.decode("utf-8", "replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.out.close()
        with contextlib.suppress(OSError):
            os.close(self.master)
