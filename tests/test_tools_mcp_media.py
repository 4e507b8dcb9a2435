"""Images and audio returned by MCP tools, as a user meets them: server-everything's
`get-tiny-image` through `cozy run` to a vision model (Ollama `images`, OpenAI
`image_url` parts, as the fake model server receives them), a clear note for a
text-only model, `--json` saying type, MIME type and size (never the bytes), the TUI's
tool row; audio and an unreadable image type from our test server."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
from helpers import write_engines
from npm_servers import NODE_DIR, npm_server
from tools_cli import configured, cozy  # noqa: F401  (the fixture)
from tui_helpers import make_app, ready, send, settle, tui_running

from cozy.testing import FakeModelServer
from cozy.tui.widgets.messages import ToolCallView

TOOL = "ev.get-tiny-image"


def tiny_image() -> str:
    """The PNG server-everything returns, as it ships it (base64)."""
    src = NODE_DIR / "server-everything" / "dist" / "tools" / "get-tiny-image.js"
    found = re.search(r'MCP_TINY_IMAGE = "([^"]+)"', src.read_text(encoding="utf-8"))
    assert found, "server-everything's get-tiny-image changed shape"
    return found.group(1)


@pytest.fixture
def everything(cozy_home: Path, fake_model: FakeModelServer) -> FakeModelServer:
    server = {**npm_server("everything", "stdio"), "cwd": str(cozy_home)}
    write_engines(
        cozy_home,
        fake_model.url,
        f"tools:\n  provider: mcp\n  servers:\n    ev: {json.dumps(server)}\n",
    )
    return fake_model


def run_tool(fake: FakeModelServer, model: str, *flags: str) -> Any:
    fake.queue_reply(tool_calls=[("ev__get-tiny-image", {})])
    fake.queue_reply("a small logo")
    return cozy("run", *flags, "-m", model, "--allow-tools", TOOL, "what does it show?")


def after_tools(fake: FakeModelServer) -> list[dict[str, Any]]:
    """The messages of the request that followed the tool round."""
    return list(fake.turn_requests()[-1]["messages"])


def test_an_image_from_a_tool_reaches_a_vision_model(everything: FakeModelServer) -> None:
    data = tiny_image()
    size = len(base64.b64decode(data))
    r = run_tool(everything, "ollama:llava", "--json")
    assert r.returncode == 0, r.stderr
    body = json.loads(r.stdout)
    [result] = body["tool_results"]
    assert result["media"] == [
        {"type": "image", "mime": "image/png", "bytes": size, "to_model": True}
    ]
    assert f"[image 1: image/png, {size} bytes]" in result["content"]
    assert data[:40] not in r.stdout  # the size, never the bytes
    # Ollama: the tool's text names the image; a user message after it carries it
    messages = after_tools(everything)
    tool = next(m for m in messages if m["role"] == "tool")
    assert "Here's the image you requested" in tool["content"]
    assert "image 1 is shown to you in the message after the tool results" in tool["content"]
    last = messages[-1]
    assert last["role"] == "user" and last["images"] == [data]
    assert f"image 1 from {TOOL}" in last["content"]
    assert messages.index(tool) < messages.index(last)

    # OpenAI's shape: image_url content parts with a data URL
    r = run_tool(everything, "openai:gpt-4o-mini", "--json")
    assert r.returncode == 0, r.stderr
    last = after_tools(everything)[-1]
    assert last["role"] == "user"
    parts = last["content"]
    assert parts[0]["type"] == "text" and TOOL in parts[0]["text"]
    assert parts[1] == {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}}

    # the next turn of that session: the history names the image, carries no bytes
    everything.queue_reply("still a logo")
    r = cozy("run", "-s", "last", "-m", "openai:gpt-4o-mini", "and now?")
    assert r.returncode == 0, r.stderr
    sent = json.dumps(after_tools(everything))
    assert data[:40] not in sent and "image_url" not in sent
    assert f"[image 1: image/png, {size} bytes]" in sent


def test_a_text_only_model_gets_a_note(everything: FakeModelServer) -> None:
    # ollama:fake-model: the fake's /api/show lists no "vision" capability
    r = run_tool(everything, "ollama:fake-model", "--no-md")
    assert r.returncode == 0 and r.stdout.strip() == "a small logo", r.stderr
    assert f"[tool {TOOL} returned image image/png" in r.stderr
    assert "not shown to the model]" in r.stderr
    messages = after_tools(everything)
    assert not any(m.get("images") for m in messages)
    tool = next(m for m in messages if m["role"] == "tool")
    assert "image 1 was not shown to you: this model reads text only" in tool["content"]
    assert messages[-1]["role"] == "tool"  # no image message after the results


def test_audio_and_unreadable_image_types_are_notes(configured: FakeModelServer) -> None:  # noqa: F811
    configured.queue_reply(tool_calls=[("test__sound", {})])
    configured.queue_reply("heard")
    r = cozy("run", "--json", "-p", "tester", "-m", "ollama:llava", "play it")
    assert r.returncode == 0, r.stderr
    [result] = json.loads(r.stdout)["tool_results"]
    assert result["media"] == [
        {"type": "audio", "mime": "audio/wav", "bytes": 64, "to_model": False}
    ]
    assert "[audio 1: audio/wav, 64 bytes]" in result["content"]
    assert (
        "image: image/svg+xml" in result["content"]
        and "not shown: models read" in result["content"]
    )
    messages = configured.turn_requests()[-1]["messages"]
    tool = next(m for m in messages if m["role"] == "tool")
    assert "audio 1 was not passed on: cozy passes no audio from tools to models" in tool["content"]
    assert not any(m.get("images") for m in messages)
    # `cozy tools call`: the same text, and the clip by type and size
    r = cozy("tools", "call", "test.sound", "--json")
    assert r.returncode == 0, r.stderr
    body = json.loads(r.stdout)
    assert body["media"] == [{"type": "audio", "mime": "audio/wav", "bytes": 64, "to_model": False}]


async def test_tui_shows_the_image_on_the_tool_row(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    server = {**npm_server("everything", "stdio"), "cwd": str(cozy_home)}
    extra = f"tools:\n  provider: mcp\n  servers:\n    ev: {json.dumps(server)}\n"
    async with tui_running(cozy_home, fake_model.url, extra) as rt:
        rt.personalities.all()["assistant"].tools = ["ev.*"]
        app = make_app(cozy_home, fake_model.url, extra, runtime=rt, model="ollama:llava")
        size = len(base64.b64decode(tiny_image()))
        async with app.run_test(size=(110, 45)) as pilot:
            await ready(app)
            fake_model.queue_reply(tool_calls=[("ev__get-tiny-image", {})])
            fake_model.queue_reply("a logo")
            await send(pilot, "show me")
            await settle(pilot)
            [view] = list(app.query(ToolCallView))
            assert view.state == "ok", view.result
            shown = str(view.render())
            assert f"🖼 image/png {size} B (shown to the model)" in shown, shown
            last = fake_model.turn_requests()[-1]["messages"][-1]
            assert last["role"] == "user" and last["images"] == [tiny_image()]
