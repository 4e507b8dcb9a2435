"""Shared test setup: telemetry and hub calls off, every test gets its own COZY_HOME."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from cozy.runtime import Runtime
    from cozy.testing import FakeModelServer

for _k, _v in {
    "MEM0_TELEMETRY": "False",
    "TELEMETRY_DISABLED": "1",
    "LITELLM_OFFLINE_MODE": "true",
    "HF_HUB_OFFLINE": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "DO_NOT_TRACK": "1",
}.items():
    os.environ[_k] = _v

pytest_plugins = ["cozy.testing.pytest_plugin"]


@pytest.fixture(autouse=True)
def _fresh_cozy_logger() -> Iterator[None]:
    """An in-process CLI call configures the "cozy" logger (level, handler, no propagation);
    reset it so later tests' caplog sees cozy's records whatever ran before."""
    import logging

    yield
    log = logging.getLogger("cozy")
    log.handlers.clear()
    log.setLevel(logging.NOTSET)
    log.propagate = True


@pytest.fixture(autouse=True)
def _fresh_cli_state() -> Iterator[None]:
    """The CLI caches its settings per process: an in-process CLI call must not hand
    one test's COZY_HOME to the next."""
    yield
    import sys

    common = sys.modules.get("cozy.cli._common")
    if common is not None:
        common.state._settings = None
        common.state.overrides = {}


@pytest.fixture(autouse=True)
def cozy_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "cozy-home"
    home.mkdir()
    monkeypatch.setenv("COZY_HOME", str(home))
    # `cozy run` would start a detached job worker that outlives the test (and asks the
    # shared fake model); tests that want it (test_cli_run.py) turn it on
    monkeypatch.setenv("COZY_BACKGROUND_JOBS", "0")
    for var in ("COZY_CONFIG", "OPENAI_API_KEY", "OPENAI_BASE_URL", "OLLAMA_HOST"):
        monkeypatch.delenv(var, raising=False)
    yield home


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database for each storage mode: SQLite in the test's directory, or a fresh
    database on the local PostgreSQL (dropped afterwards; required under CI=true)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
        return
    from pg_redis_helpers import pg_database

    with pg_database() as url:
        yield url


@pytest.fixture
async def rt(cozy_home: Path, fake_model: FakeModelServer) -> AsyncIterator[Runtime]:
    """A runtime on the packaged engines.yaml with the fake model as its AI engine
    (tests/helpers.py `write_engines`), closed after the test."""
    from helpers import running

    async with running(cozy_home, fake_model.url) as runtime:
        yield runtime
