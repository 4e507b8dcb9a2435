"""Test engines and helpers (only the model is faked elsewhere: by the fake server)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from cozy.core.events import ChatEvent
from cozy.core.orchestrator import ChatRequest
from cozy.core.types import (
    KnowledgeHit,
    MemoryHit,
    Message,
    Profile,
    ProfileSlot,
    ToolOutput,
    ToolSpec,
)
from cozy.engines.base import KnowledgeEngine, MemoryEngine, ProfileEngine, ToolContext, ToolsEngine
from cozy.runtime import Runtime
from cozy.settings import Settings
from cozy.storage.store import MessageRow


class SleepyKnowledge(KnowledgeEngine):
    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        super().__init__({})
        self.delay, self.fail = delay, fail

    async def search_knowledge(
        self, query: str, *, user_id: str, collections: Sequence[str] | None = None, limit: int = 5
    ) -> list[KnowledgeHit]:
        await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("index is broken")
        return [
            KnowledgeHit(
                "k1", "The office wifi password rotates monthly.", 0.9, "notes/wifi.md#rotation"
            )
        ]

    async def add_knowledge(
        self,
        text: str,
        *,
        user_id: str,
        collection: str = "default",
        source: str = "",
        metadata: dict[str, Any] | None = None,
    ) -> str:
        return "k1"


class SleepyProfile(ProfileEngine):
    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        super().__init__({})
        self.delay, self.fail = delay, fail

    async def get_profile(self, user_id: str, *, max_tokens: int = 300) -> Profile:
        await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("profile store down")
        return Profile("name: Ada; works as: engineer", [ProfileSlot("basic_info", "name", "Ada")])

    async def update_profile(
        self, user_id: str, messages: Sequence[Message], *, source_ids: Sequence[str] = ()
    ) -> None:
        return None


class SleepyMemory(MemoryEngine):
    def __init__(
        self, delay: float = 0.0, fail: bool = False, per_user: dict[str, str] | None = None
    ) -> None:
        super().__init__({})
        self.delay, self.fail = delay, fail
        self.per_user = per_user or {}

    async def search_memories(
        self,
        query: str,
        *,
        user_id: str,
        limit: int = 5,
        personality_id: str | None = None,
        session_id: str | None = None,
    ) -> list[MemoryHit]:
        await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("memory index corrupt")
        text = self.per_user.get(user_id, "The user likes green tea.")
        return [MemoryHit(f"m-{user_id}", text, 0.8)]

    async def add_memory(
        self,
        messages: Sequence[Message],
        *,
        user_id: str,
        session_id: str | None = None,
        personality_id: str | None = None,
        source_ids: Sequence[str] = (),
    ) -> list[str]:
        return []


class EchoTools(ToolsEngine):
    """A plain in-process tools engine for orchestrator tests (MCP is tested separately)."""

    def __init__(self) -> None:
        super().__init__({})
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def list_tools(self) -> list[ToolSpec]:
        obj = {"type": "object", "properties": {"text": {"type": "string"}}}
        return [
            ToolSpec("test.echo", "echo text back", obj, "read-only", "test"),
            ToolSpec("test.write", "write text somewhere", obj, "write", "test"),
            ToolSpec("test.boom", "always fails", obj, "read-only", "test"),
        ]

    async def execute_tool(
        self, name: str, arguments: dict[str, Any], ctx: ToolContext
    ) -> ToolOutput:
        self.calls.append((name, arguments))
        if name == "test.boom":
            raise RuntimeError("kaboom")
        return ToolOutput(f"{name}:{arguments.get('text', '')}")


def write_engines(home: Path, fake_url: str, extra: str = "") -> Path:
    path = home / "engines.yaml"
    path.write_text(
        "ai:\n  provider: ollama\n  model: fake-model\n"
        f"  providers:\n    ollama: {{host: '{fake_url}', max_retries: 0}}\n"
        f"    openai: {{base_url: '{fake_url}/v1', api_key: test-key}}\n" + extra,
        encoding="utf-8",
    )
    return path


async def open_runtime(home: Path, fake_url: str, extra: str = "", **settings: Any) -> Runtime:
    write_engines(home, fake_url, extra)
    return await Runtime.open(Settings(home=home, **settings))


@contextlib.asynccontextmanager
async def running(
    home: Path, fake_url: str, extra: str = "", **settings: Any
) -> AsyncIterator[Runtime]:
    """`open_runtime`, closed when the block ends however it ends (the `rt` fixture
    for a test that needs its own engines.yaml lines or settings)."""
    write_engines(home, fake_url, extra)
    async with opened(Settings(home=home, **settings)) as rt:
        yield rt


@contextlib.asynccontextmanager
async def opened(settings: Settings, **options: Any) -> AsyncIterator[Runtime]:
    """`Runtime.open(settings, **options)`, closed when the block ends however it ends."""
    rt = await Runtime.open(settings, **options)
    try:
        yield rt
    finally:
        await rt.close()


async def collect(events: AsyncIterator[ChatEvent]) -> list[ChatEvent]:
    return [e async for e in events]


def req(prompt: str, **kw: Any) -> ChatRequest:
    return ChatRequest(prompt=prompt, **kw)


def wait_for_health(proc: subprocess.Popen[str], url: str, seconds: float) -> None:
    """Return once `url`/health answers 200. When `proc` (a `cozy serve` started with
    stderr=PIPE, text=True) exits or `seconds` pass first: kill it and raise with the
    tail of what it wrote."""
    import time

    import httpx

    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"cozy serve did not start: {proc.communicate()[1][-2000:]}")
        time.sleep(0.1)


def clear_of_minute_boundary(margin: float = 25.0) -> None:
    """Rate limits count in fixed epoch-minute windows: a boundary falling between the
    requests of a limit test restarts the count. Returns once `margin` seconds of the
    current window are left (waiting for the next window when fewer are)."""
    import time

    left = 60 - time.time() % 60
    if left < margin:
        time.sleep(left + 0.2)


def cozy(
    *args: str,
    stdin: str | bytes | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    data = stdin.encode() if isinstance(stdin, str) else stdin
    proc = subprocess.run(
        [sys.executable, "-m", "cozy", *args],
        input=data,
        capture_output=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    return subprocess.CompletedProcess(
        proc.args,
        proc.returncode,
        proc.stdout.decode("utf-8", "replace"),
        proc.stderr.decode("utf-8", "replace"),
    )


async def assistant_rows(home: Path) -> list[MessageRow]:
    rt = await Runtime.open(Settings(home=home), engines=False)
    try:
        rows: list[MessageRow] = []
        for s in await rt.store.list_sessions("local", limit=100):  # --no-auth acts as local
            rows.extend(m for m in await rt.store.list_messages(s.id) if m.role == "assistant")
        return rows
    finally:
        await rt.close()
