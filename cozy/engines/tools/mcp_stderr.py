"""A stdio server's stderr, kept as a bounded ring of its last bytes.

The server writes into a pipe that the event loop drains; only the last `limit`
bytes are kept, so a server that floods stderr costs a fixed amount of memory and
no disk (a file grew to hundreds of MB in seconds). A full pipe makes the flooding
server wait, which is the back-pressure we want.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import IO

DEFAULT_LIMIT = 64 * 1024


class StderrRing:
    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self.total = 0  # bytes the server wrote, including what was dropped
        self._buf = bytearray()
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        self._read_fd: int | None = read_fd
        self.writer: IO[str] | None = os.fdopen(write_fd, "w", encoding="utf-8")
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(read_fd, self._drain)

    def _drain(self) -> None:
        fd = self._read_fd
        if fd is None:
            return
        try:
            data = os.read(fd, 1 << 20)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # every writer closed: the server exited
            self._loop.remove_reader(fd)
            return
        self.total += len(data)
        self._buf += data
        if len(self._buf) > self.limit:
            del self._buf[: len(self._buf) - self.limit]

    def spawned(self) -> None:
        """The child holds its own copy now; closing ours lets us see end of file."""
        if self.writer is not None:
            with contextlib.suppress(OSError):
                self.writer.close()
            self.writer = None

    def text(self) -> str:
        self._drain_now()
        return self._buf.decode("utf-8", "replace")

    def tail(self, limit: int = 600) -> str:
        """The last lines (within `limit` characters), joined for a one-line message."""
        data = self.text()[-limit:]
        return " | ".join(line.strip() for line in data.strip().splitlines()[-6:] if line.strip())

    def _drain_now(self) -> None:
        """Take what is already in the pipe (the loop may not have run since)."""
        for _ in range(4):
            before = self.total
            self._drain()
            if self.total == before:
                break

    def close(self) -> None:
        self.spawned()
        fd, self._read_fd = self._read_fd, None
        if fd is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(fd)
            with contextlib.suppress(OSError):
                os.close(fd)
