"""pytest plugin: the `fake_model` fixture (one server per session, reset per test).

Enabled with `pytest_plugins = ["cozy.testing.pytest_plugin"]`. Importing this
module is cheap: litestar and uvicorn are imported when the server starts.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from cozy.testing.server import FakeModelServer


@pytest.fixture(scope="session")
def fake_model_session() -> Iterator[FakeModelServer]:
    from cozy.testing.server import FakeModelServer

    server = FakeModelServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fake_model(fake_model_session: FakeModelServer) -> Iterator[FakeModelServer]:
    """The session's fake model server, reset (queue, rules, failures, requests) for this test."""
    fake_model_session.reset()
    yield fake_model_session
    fake_model_session.reset()
