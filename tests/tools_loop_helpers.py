"""Shared setup for the tool-loop tests: a tester personality, engines.yaml with the
real test MCP server, a scripted approver, and a check that no server outlives a test."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
from helpers import open_runtime, running
from mcp_servers.helpers import SERVER, live_children

from cozy.core.events import ChatEvent, Done, ToolResult
from cozy.core.types import ToolCall, ToolSpec
from cozy.engines.base import ToolContext
from cozy.runtime import Runtime
from cozy.testing import FakeModelServer

PROFILE = """\
id: {id}
name: Tester
system_prompt: You test tools.
tools: ["builtin.*", "test.*", "web.*"]
"""


def tools_yaml(extra: str = "", servers: str | None = None) -> str:
    if servers is None:
        servers = f"    test: {{command: '{sys.executable}', args: ['{SERVER}']}}\n"
    return f"tools:\n  provider: mcp\n  timeout: 10\n{extra}  servers:\n{servers}"


@pytest.fixture(autouse=True)
def tester_profile(cozy_home: Path) -> Iterator[None]:
    (cozy_home / "profiles").mkdir(exist_ok=True)
    for pid in ("tester", "other"):
        (cozy_home / "profiles" / f"{pid}.yaml").write_text(PROFILE.format(id=pid), "utf-8")
    before = {p.pid for p in live_children()}
    yield
    deadline = time.monotonic() + 30  # generous: a loaded machine reaps slowly
    while time.monotonic() < deadline and live_children(before):
        time.sleep(0.05)
    assert live_children(before) == [], "an MCP server outlived the runtime"


async def runtime(home: Path, fake: FakeModelServer, extra: str = "", **kw: Any) -> Runtime:
    return await open_runtime(home, fake.url, tools_yaml(extra, **kw))


def tools_running(
    home: Path, fake: FakeModelServer, extra: str = "", **kw: Any
) -> AbstractAsyncContextManager[Runtime]:
    """`runtime`, closed when the `async with` block ends."""
    return running(home, fake.url, tools_yaml(extra, **kw))


def results(events: list[ChatEvent]) -> list[ToolResult]:
    return [e for e in events if isinstance(e, ToolResult)]


def done(events: list[ChatEvent]) -> Done:
    last = events[-1]
    assert isinstance(last, Done), last
    return last


class Approver:
    """Records what it was asked and answers from a script."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.asked: list[str] = []

    async def __call__(self, call: ToolCall, spec: ToolSpec, ctx: ToolContext) -> Any:
        self.asked.append(spec.name)
        return self.answers.pop(0) if self.answers else "deny"
