"""Start the test MCP server over HTTP as a subprocess and find processes we left behind."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil

SERVER = Path(__file__).with_name("cozy_test_server.py")
# close() stops each server gracefully within `shutdown_timeout` (2.5 s), then kills it and
# waits up to 2 s more; the rest is slack for a loaded machine. Still far below the 60-120 s
# the hanging tools in the tests would take if close() waited for them.
CLOSE_BOUND = 2.5 + 2.0 + 15


async def eventually(predicate: Callable[[], bool], limit: float = 20.0) -> bool:
    """Poll `predicate` (letting the loop run) until it holds or `limit` seconds pass."""
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"test MCP server did not listen on {port}")


@contextlib.contextmanager
def http_server(mode: str = "--http") -> Iterator[int]:
    """Run the test server with streamable HTTP (or `--sse`) on a free port."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(SERVER), mode, str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port)
        yield port
    finally:
        proc.kill()
        proc.wait(5)


def live_children(exclude: set[int] | None = None) -> list[psutil.Process]:
    """Our descendants that are still running (zombies are dead already)."""
    out = []
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            if child.pid not in (exclude or set()) and child.status() != psutil.STATUS_ZOMBIE:
                out.append(child)
    return out


def process_gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
