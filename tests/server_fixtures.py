"""Fixtures for the server tests: the real app on a real uvicorn (in a thread), keys.

Only the model is fake (the fake model server); SQLite, diskcache, uvicorn, the
openai client and httpx are real.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import write_engines

from cozy.server.app import create_app
from cozy.server.auth import issue_token
from cozy.server.config import ServerSettings
from cozy.settings import Settings
from cozy.storage.api_keys import ApiKeys
from cozy.storage.store import Store
from cozy.testing import FakeModelServer


class ServerThread:
    """uvicorn serving an ASGI app on a free port in a background thread."""

    def __init__(self, app: Any, graceful: float = 2) -> None:
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=int(graceful),
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 60  # lifespan opens the runtime: slow under load
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("cozy serve did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)  # generous: shutdown drains the job worker
        # a server left running would call the shared fake model during the next test
        assert not self.thread.is_alive(), "cozy serve did not shut down within 60 s"


@dataclass
class Served:
    url: str
    home: Path
    settings: Settings
    server: ServerSettings
    keys: dict[str, str]
    fake: FakeModelServer

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def headers(self, who: str = "alice") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}

    def token(self, user: str, *, role: str = "user", ttl: float = 600, known: bool = True) -> str:
        """A JWT for `user`; like `cozy token issue`, the user is created (unless `known`
        is False: the server refuses tokens of users it does not know)."""
        if known:

            async def ensure(store: Store) -> None:
                await store.ensure_user(user, role=role)

            self.store_call(ensure)
        return issue_token(self.settings, self.server, user, role=role, ttl_seconds=ttl)

    def store_call(self, fn: Any) -> Any:
        """Run `await fn(store)` against the same database, in a fresh loop."""

        async def go() -> Any:
            store = await Store.open(self.settings.db_url)
            try:
                return await fn(store)
            finally:
                await store.close()

        with ThreadPoolExecutor(1) as pool:  # works from sync and async tests alike
            return pool.submit(asyncio.run, go()).result()


def make_keys(settings: Settings) -> dict[str, str]:
    async def go() -> dict[str, str]:
        store = await Store.open(settings.db_url)
        try:
            keys = ApiKeys(store)
            out = {}
            for who, role in (("alice", "user"), ("bob", "user"), ("root", "admin")):
                out[who] = (await keys.create(who, role=role))[0]
            return out
        finally:
            await store.close()

    return asyncio.run(go())


def start_server(
    home: Path, fake: FakeModelServer, extra_yaml: str = "", **server_opts: Any
) -> tuple[ServerThread, Served]:
    write_engines(home, fake.url, extra_yaml)
    settings = Settings(home=home, config=home / "engines.yaml")
    opts = {
        "rate_limit_rpm": 0,
        "rate_limit_tpm": 0,
        "ip_rate_limit_rpm": 0,
        "auth_cache_seconds": 0.0,
        "jwt_secret": "test-secret-0123456789-0123456789-abcdef",
        **server_opts,
    }
    server = ServerSettings(**opts)
    keys = make_keys(settings)
    thread = ServerThread(create_app(settings, server)).start()
    return thread, Served(thread.url, home, settings, server, keys, fake)


@pytest.fixture(name="served")
def served_fixture(cozy_home: Path, fake_model: FakeModelServer) -> Iterator[Served]:
    thread, info = start_server(cozy_home, fake_model)
    try:
        yield info
    finally:
        thread.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COZY_")}
    env.update(
        COZY_HOME=str(home),
        COZY_CONFIG=str(home / "engines.yaml"),
        COZY_SERVER_RATE_LIMIT_RPM="0",
        COZY_SERVER_IP_RATE_LIMIT_RPM="0",
    )
    return env
