"""Tests of third-party libraries (mem0, memobase, cognee) run with the network cut:
any connection (and, by default, any name lookup) beyond loopback fails the test."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest


def _loopback(address: Any) -> bool:
    host = address[0] if isinstance(address, tuple) else address
    return isinstance(host, str) and (host in ("localhost", "::1") or host.startswith("127."))


@contextmanager
def loopback_only(
    monkeypatch: pytest.MonkeyPatch, who: str = "", *, lookups: bool = True
) -> Iterator[list[str]]:
    """Block non-loopback connects (and lookups); yields the attempts, asserts none at exit."""
    attempts: list[str] = []
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address):
            attempts.append(str(address))
            raise OSError(f"network blocked in tests: {address}")
        return real_connect(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not _loopback((str(host),)):
            attempts.append(str(host))
            raise socket.gaierror(f"network blocked in tests: {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    if lookups:
        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield attempts
    assert attempts == [], f"{who + ' ' if who else ''}tried to reach the network: {attempts}"
