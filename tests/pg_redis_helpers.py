"""Real PostgreSQL and Redis for the server-mode tests: a fresh database per module,
a Redis db number per module (flushed before and after), free ports, `cozy serve`
processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

PG_ADMIN = os.environ.get("COZY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("COZY_TEST_REDIS", "redis://127.0.0.1:6379")
COZY = [sys.executable, "-m", "cozy"]


def _require(what: str, exc: BaseException) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required in CI ({exc})")
    pytest.skip(f"no {what} reachable ({exc})")


async def _admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextmanager
def pg_database() -> Iterator[str]:
    """A fresh database on the local PostgreSQL, dropped afterwards."""
    name = f"cozy_t_{uuid.uuid4().hex[:10]}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, ImportError) as exc:
        _require("PostgreSQL at 127.0.0.1:5432", exc)
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def redis_db(number: int) -> Iterator[str]:
    """A Redis database number of our own, flushed before and after."""
    import redis

    url = f"{REDIS}/{number}"
    client = redis.Redis.from_url(url, socket_timeout=2)
    try:
        client.flushdb()
    except redis.RedisError as exc:
        _require("Redis at 127.0.0.1:6379", exc)
    try:
        yield url
    finally:
        client.flushdb()
        client.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cozy_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COZY_")}
    env.update(COZY_HOME=str(home), **extra)
    if (home / "engines.yaml").is_file():
        env["COZY_CONFIG"] = str(home / "engines.yaml")
    return env


def cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COZY, *args], env=env, capture_output=True, text=True, timeout=timeout)


class Instance:
    """One `cozy serve` process."""

    def __init__(self, env: dict[str, str], port: int | None = None, *args: str) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env
        self.args = args
        self.proc: subprocess.Popen[str] | None = None
        self._err: Any = None

    def start(self, wait: bool = True) -> Instance:
        # stderr goes to a file, not a pipe: nobody reads a pipe while the server runs, and
        # its JSON logs (~1 KB a turn) would fill the 64 KB pipe and block the server
        self._err = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 - read by stderr()
        self.proc = subprocess.Popen(
            [*COZY, "serve", "--port", str(self.port), *self.args],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=self._err,
            text=True,
        )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 40) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"cozy serve did not start: {self.stderr()[-3000:]}")
            time.sleep(0.1)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        self.kill()

    def stderr(self) -> str:
        if self.proc is None or self._err is None:
            return ""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._err.seek(0)
        return str(self._err.read())


class Proxy:
    """A TCP forwarder to host:port that can drop every connection and refuse new ones."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.down = False
        self.frozen = False
        self._thawed = threading.Event()
        self._thawed.set()
        self._held: list[socket.socket] = []
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._srv = socket.create_server(("127.0.0.1", 0))  # port 0: no race for a free one
        self.port = int(self._srv.getsockname()[1])
        self._srv.settimeout(0.2)
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self._srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.down:
                client.close()
                continue
            if self.frozen:  # a blackhole: the connection is accepted and never answered
                with self._lock:
                    self._held.append(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)  # the 5 s is for connecting: an idle pooled link stays
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                self._thawed.wait()  # frozen: the bytes are held, nothing moves
                dst.sendall(data)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.down = True
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def restore(self) -> None:
        self.down = False

    def freeze(self) -> None:
        """Like a host that stopped answering: every connection, open or new, is
        accepted and silent (no RST, no FIN), until `thaw`."""
        self.frozen = True
        self._thawed.clear()

    def thaw(self) -> None:
        """Traffic moves again; connections made while frozen are dropped (their
        clients gave up on them long ago)."""
        self.frozen = False
        with self._lock:
            held, self._held = self._held, []
        for s in held:
            with contextlib.suppress(OSError):
                s.close()
        self._thawed.set()

    def close(self) -> None:
        self._stop = True
        self.thaw()
        self.cut()
        self._srv.close()
