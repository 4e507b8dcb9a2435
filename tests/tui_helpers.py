"""Helpers for the TUI tests: build the app against the fake model, wait for turns."""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

from helpers import running, write_engines
from textual.pilot import Pilot

from cozy.runtime import Runtime
from cozy.settings import Settings
from cozy.tui.app import CozyApp
from cozy.tui.widgets.messages import ChatLog, MessageView

# the packaged engines.yaml turns local engines on; tests opt in per test
QUIET = (
    "knowledge: {provider: none}\nmemory: {provider: none}\nprofile: {provider: none}\n"
    "embed: {provider: none}\nvoice: {provider: none}\n"
)


def make_app(home: Path, fake_url: str, extra: str = "", **kw: Any) -> CozyApp:
    write_engines(home, fake_url, QUIET + extra)
    kw.setdefault("check_model", False)
    return CozyApp(Settings(home=home), **kw)


# Generous limits: a loaded 2-core machine can take many seconds to open the runtime.
async def ready(app: CozyApp) -> None:
    await asyncio.wait_for(app.ready.wait(), 60)


async def settle(pilot: Pilot[Any], limit: float = 60) -> None:
    """Wait until no worker runs (turn, sessions refresh), then let the screen update."""
    app = pilot.app
    prompts = app.query("#prompt")
    if prompts:  # an Enter just pressed sends once its key burst is over
        await pilot.pause()
        await wait_for(lambda: not getattr(prompts.first(), "enter_pending", False), limit)
        await pilot.pause()  # the Submitted message reaches the app, which starts the turn
    await asyncio.wait_for(app.workers.wait_for_complete(), limit)
    await pilot.pause()
    await asyncio.wait_for(app.workers.wait_for_complete(), limit)
    await pilot.pause()


async def send(pilot: Pilot[Any], text: str) -> None:
    app = pilot.app
    prompt = app.query_one("#prompt")
    prompt.load_text(text)  # type: ignore[attr-defined]
    prompt.focus()
    await pilot.press("enter")
    await enter_decided(pilot)
    await settle(pilot)


async def enter_decided(pilot: Pilot[Any]) -> None:
    """Enter sends once its key burst is over (a short timer, see widgets/prompt.py)."""
    prompt: Any = pilot.app.query_one("#prompt")
    await pilot.pause()
    await wait_for(lambda: not prompt.enter_pending, 10)
    await pilot.pause()


async def wait_for(predicate: Any, limit: float = 30, step: float = 0.02) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(step)


def views(app: CozyApp) -> list[tuple[str, str, str]]:
    return [(v.role, v.status, v.text) for v in app.query_one(ChatLog).query(MessageView)]


async def open_rt(home: Path, fake_url: str, extra: str = "") -> Runtime:
    write_engines(home, fake_url, QUIET + extra)
    return await Runtime.open(Settings(home=home))


def tui_running(home: Path, fake_url: str, extra: str = "") -> AbstractAsyncContextManager[Runtime]:
    """`open_rt`, closed when the `async with` block ends."""
    return running(home, fake_url, QUIET + extra)
