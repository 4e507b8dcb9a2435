"""Snapshots (pytest-textual-snapshot) at 80x24: main screen, approval modal,
context panel, and the no-model state. Update with `pytest --snapshot-update`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from helpers import EchoTools
from textual.pilot import Pilot
from textual.widgets import TextArea
from tui_helpers import make_app, tui_running, wait_for

from cozy.core.toolloop import ToolRunner
from cozy.storage.store import NewMessage
from cozy.testing import FakeModelServer
from cozy.tui.screens.approval import ApprovalScreen
from cozy.tui.widgets.context_panel import ContextPanel

SIZE = (80, 24)


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("cozy.tui.widgets.sidebar.when", lambda ts: "11-24 09:30")


async def _seed(home: Path, url: str) -> None:
    async with tui_running(home, url) as rt:
        s = await rt.store.create_session("local", "coder", title="Reverse a list")
        await rt.store.add_messages(
            s.id,
            [
                NewMessage("user", "How do I reverse a list in Python?"),
                NewMessage(
                    "assistant",
                    "Use slicing:\n\n```python\nitems[::-1]\n```\n\nor `items.reverse()` "
                    "to do it in place.",
                    completion_tokens=21,
                    latency_ms=840,
                ),
            ],
        )


async def _ready(pilot: Pilot[Any]) -> None:
    app: Any = pilot.app
    await asyncio.wait_for(app.ready.wait(), 60)  # generous: a loaded machine is slow
    await asyncio.wait_for(app.workers.wait_for_complete(), 60)
    # a steady cursor: a blinking one is caught at whatever phase the (loaded) machine
    # reaches the capture in, and freezes at that phase once a modal screen is on top
    for area in app.query(TextArea):
        area.cursor_blink = False
    await pilot.pause()


def test_main_screen(snap_compare: Any, cozy_home: Path, fake_model: FakeModelServer) -> None:
    asyncio.run(_seed(cozy_home, fake_model.url))
    app = make_app(cozy_home, fake_model.url, session="last")
    assert snap_compare(app, terminal_size=SIZE, run_before=_ready)


def test_approval_modal(snap_compare: Any, cozy_home: Path, fake_model: FakeModelServer) -> None:
    fake_model.queue_reply(tool_calls=[("test__write", {"text": "buy oat milk"})])
    app = make_app(cozy_home, fake_model.url)

    async def run_before(pilot: Pilot[Any]) -> None:
        await _ready(pilot)
        rt = app.runtime
        rt.orchestrator.tools = ToolRunner(EchoTools(), audit=rt.store)
        rt.personalities.all()["assistant"].tools = ["test.*"]
        app.query_one("#prompt").load_text("add oat milk to my list")  # type: ignore[attr-defined]
        await pilot.press("enter")
        await wait_for(lambda: isinstance(app.screen, ApprovalScreen))
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_context_panel(snap_compare: Any, cozy_home: Path, fake_model: FakeModelServer) -> None:
    app = make_app(cozy_home, fake_model.url)
    meta = {
        "enabled_engines": ["knowledge", "profile", "memory"],
        "degraded": True,
        "degrade_reasons": ["memory: timed out after 0.4s"],
        "engines": {
            "knowledge": {"latency_ms": 12.4, "degraded": False},
            "profile": {"latency_ms": 3.1, "degraded": False},
            "memory": {"latency_ms": 400.2, "degraded": True},
        },
        "memories": [],
        "profile_slots": ["basic_info.name", "work.title"],
        "knowledge": [{"id": "k1", "citation": "notes/wifi.md#rotation", "score": 0.91}],
        "token_budget": {"used": 1830, "limit": 7168},
    }

    async def run_before(pilot: Pilot[Any]) -> None:
        await _ready(pilot)
        await pilot.press("ctrl+b", "f3")
        app.query_one(ContextPanel).show(meta)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_no_model_state(snap_compare: Any, cozy_home: Path, fake_model: FakeModelServer) -> None:
    asyncio.run(_seed(cozy_home, fake_model.url))
    app = make_app(cozy_home, "http://127.0.0.1:9", check_model=True)
    assert snap_compare(app, terminal_size=SIZE, run_before=_ready)


def test_editing_a_message(snap_compare: Any, cozy_home: Path, fake_model: FakeModelServer) -> None:
    """/edit 1: the message back in the prompt, the banner saying what Enter will do."""
    asyncio.run(_seed(cozy_home, fake_model.url))
    app = make_app(cozy_home, fake_model.url, session="last")

    async def run_before(pilot: Pilot[Any]) -> None:
        await _ready(pilot)
        await pilot.press("f6")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_narrow_terminal(snap_compare: Any, cozy_home: Path, fake_model: FakeModelServer) -> None:
    """60 columns: the sidebar has stepped aside, the chat and prompt keep the width."""
    asyncio.run(_seed(cozy_home, fake_model.url))
    app = make_app(cozy_home, fake_model.url, session="last")
    assert snap_compare(app, terminal_size=(60, 20), run_before=_ready)
