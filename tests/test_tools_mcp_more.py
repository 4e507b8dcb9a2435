"""MCP beyond tool calls, against the reference servers from npm (installed by
./install.sh --dev): prompts, resources, progress notifications, and servers whose
natural names collide with cozy's built-ins."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import write_engines
from npm_servers import npm_server
from tools_cli import cozy

from cozy.core.types import Caller
from cozy.engines.base import ToolContext
from cozy.engines.tools.mcp_provider import MCPTools
from cozy.testing import FakeModelServer

DOC = "demo://resource/static/document/architecture.md"


async def test_prompts_resources_and_progress_from_server_everything() -> None:
    eng = MCPTools({"servers": {"ev": npm_server("everything", "stdio")}, "builtin": False})
    try:
        prompts, problems = await eng.list_prompts()
        assert problems == []
        by_name = {p.qualified: p for p in prompts}
        assert by_name["ev.args-prompt"].arguments[0] == {
            "name": "city",
            "description": "Name of the city",
            "required": True,
        }
        messages = await eng.get_prompt("ev.args-prompt", {"city": "Lyon"})
        assert messages[0]["role"] == "user" and "Lyon" in messages[0]["content"]
        resources, _ = await eng.list_resources("ev")
        assert DOC in {r.uri for r in resources}
        doc = await eng.read_resource("ev", DOC)
        assert doc.text.startswith("# Everything Server") and doc.mime_type == "text/markdown"
        # progress notifications reach the caller while the tool runs
        seen: list[tuple[Any, Any, Any]] = []
        ctx = ToolContext(Caller(), extra={"on_progress": lambda *a: seen.append(a)})
        out = await eng.execute_tool(
            "ev.trigger-long-running-operation", {"duration": 1, "steps": 3}, ctx
        )
        assert not out.is_error, out.content
        assert [s[0] for s in seen] == [1, 2, 3] and all(s[1] == 3 for s in seen)
        # a task-only tool is not offered, and the reason is kept
        names = {s.name for s in await eng.list_tools()}
        assert "ev.simulate-research-query" not in names
        assert "taskSupport" in eng.hidden["ev"]["simulate-research-query"]
    finally:
        await eng.close()


async def test_server_memory_as_memory_mcp_next_to_the_builtins() -> None:
    """server-memory is usually configured as `memory`: cozy keeps that name for its own
    memory tools, so it runs as `memory-mcp` and nothing is shadowed or duplicated."""
    eng = MCPTools({"servers": {"memory-mcp": npm_server("memory")}})
    eng.register_builtin(
        _spec("memory.search"),
        lambda args, ctx: _async("builtin search"),
    )
    try:
        specs = await eng.list_tools()
        names = [s.name for s in specs]
        assert len(names) == len(set(names))
        assert "memory.search" in names and "memory-mcp.create_entities" in names
        assert {s.server for s in specs if s.name.startswith("memory-mcp.")} == {"memory-mcp"}
        ctx = ToolContext(Caller())
        assert (await eng.execute_tool("memory.search", {}, ctx)).content == "builtin search"
    finally:
        await eng.close()


def _spec(name: str) -> Any:
    from cozy.core.types import ToolSpec

    return ToolSpec(name, "builtin", {"type": "object"}, "read-only")


async def _async(value: str) -> str:
    return value


@pytest.fixture
def everything_home(cozy_home: Path, fake_model: FakeModelServer) -> Path:
    server = {**npm_server("everything", "stdio"), "cwd": str(cozy_home)}
    write_engines(
        cozy_home,
        fake_model.url,
        f"tools:\n  provider: mcp\n  servers:\n    ev: {json.dumps(server)}\n",
    )
    return cozy_home


def test_cli_prompts_resources_and_stream_progress(
    everything_home: Path, fake_model: FakeModelServer
) -> None:
    r = cozy("tools", "prompts", "--json")
    assert r.returncode == 0, r.stderr
    assert "ev.args-prompt" in {p["name"] for p in json.loads(r.stdout)}
    r = cozy("tools", "resources", "--json")
    assert f"ev:{DOC}" in {x["ref"] for x in json.loads(r.stdout)}
    r = cozy("tools", "read", f"ev:{DOC}")
    assert r.returncode == 0 and r.stdout.startswith("# Everything Server")
    r = cozy("tools", "read", "ev:demo://no/such/thing")
    assert r.returncode != 0 and "Traceback" not in r.stderr and "ev:demo://no/such" in r.stderr
    # a prompt as the turn: its leading key=value words are the prompt's arguments
    fake_model.queue_reply("weather noted")
    r = cozy("run", "--json", "--prompt", "ev.args-prompt", "city=Lyon", "and be brief")
    assert r.returncode == 0, r.stderr
    sent = fake_model.turn_requests()[-1]["messages"][-1]["content"]
    assert "Lyon" in sent and sent.endswith("and be brief")
    # a resource attached to the turn, cited by its reference
    fake_model.queue_reply("read it")
    r = cozy("run", "--json", "--resource", f"ev:{DOC}", "summarise this")
    body = json.loads(r.stdout)
    assert body["resources"][0]["ref"] == f"ev:{DOC}"
    sent = fake_model.turn_requests()[-1]["messages"][-1]["content"]
    assert f'<resource ref="ev:{DOC}">' in sent and "# Everything Server" in sent
    # a running tool's progress shows in --stream events
    fake_model.queue_reply(
        tool_calls=[("ev__trigger-long-running-operation", {"duration": 1, "steps": 2})]
    )
    fake_model.queue_reply("done")
    r = cozy(
        "run",
        "--json",
        "--stream",
        "--allow-tools",
        "ev.trigger-long-running-operation",
        "go",
    )
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]
    progress = [e for e in events if e["type"] == "tool_progress"]
    assert [p["progress"] for p in progress] == [1, 2] and progress[0]["total"] == 2
    kinds = [e["type"] for e in events]
    assert kinds.index("tool_progress") < kinds.index("tool_result")


async def test_sampling_elicitation_and_roots_with_server_everything(tmp_path: Path) -> None:
    eng = MCPTools(
        {
            "servers": {"ev": {**npm_server("everything", "stdio"), "roots": [str(tmp_path)]}},
            "builtin": False,
        }
    )
    asked: list[tuple[str, int]] = []

    async def sample(server: str, messages: Any, system: Any, max_tokens: int) -> Any:
        asked.append((server, max_tokens))
        return "a reply from cozy's model", "fake:model"

    forms: list[list[str]] = []

    async def elicit(server: str, message: str, schema: dict[str, Any]) -> Any:
        forms.append(list(schema["properties"]))
        return "accept", {"name": "Ada"}

    try:
        names = {s.name for s in await eng.list_tools()}
        # the server offers these only to a client that declared the capabilities
        assert {"ev.get-roots-list", "ev.trigger-sampling-request"} <= names
        assert "ev.trigger-elicitation-request" in names
        ctx = ToolContext(Caller(), extra={"sample": sample, "elicit": elicit})
        out = await eng.execute_tool("ev.get-roots-list", {}, ctx)
        assert tmp_path.as_uri() in out.content
        out = await eng.execute_tool(
            "ev.trigger-sampling-request", {"prompt": "hi", "maxTokens": 77}, ctx
        )
        assert "a reply from cozy's model" in out.content and asked == [("ev", 77)]
        out = await eng.execute_tool("ev.trigger-elicitation-request", {}, ctx)
        assert "name" in forms[0] and "Ada" in out.content
        # a face that cannot ask (HTTP) or a call outside a turn: refused, and said so
        bare = ToolContext(Caller())
        out = await eng.execute_tool("ev.trigger-elicitation-request", {}, bare)
        assert "over HTTP it is refused" in out.content
        out = await eng.execute_tool("ev.trigger-sampling-request", {"prompt": "hi"}, bare)
        assert out.is_error and "only during a chat turn" in out.content
    finally:
        await eng.close()


def test_sampling_in_a_turn_is_approved_capped_and_audited(
    everything_home: Path, fake_model: FakeModelServer
) -> None:
    call = ("ev__trigger-sampling-request", {"prompt": "write a haiku", "maxTokens": 5000})
    fake_model.queue_reply(tool_calls=[call])
    fake_model.queue_reply("an old pond")  # the server's sampling request
    fake_model.queue_reply("here is your haiku")
    r = cozy("run", "--json", "-m", "openai:fake-model", "--allow-tools", "ev.*", "--yes", "go")
    assert r.returncode == 0, r.stderr
    body = json.loads(r.stdout)
    [res] = body["tool_results"]
    assert "an old pond" in res["content"] and body["text"] == "here is your haiku"
    sampled = [q for q in fake_model.chat_requests() if q.get("max_tokens") == 1024]
    assert sampled, "the sampling request was not capped at 1024 tokens"
    r = cozy("tools", "audit", "--json", "--tool", "ev.sampling")
    [row] = json.loads(r.stdout)
    assert (row["decision"], row["status"], row["level"]) == ("auto-approved", "ok", "network")
    # not named by --allow-tools and no terminal to ask: the server is refused
    fake_model.queue_reply(tool_calls=[call])
    fake_model.queue_reply("could not")
    r = cozy("run", "--json", "--allow-tools", "ev.trigger-sampling-request", "--yes", "go again")
    [res] = json.loads(r.stdout)["tool_results"]
    assert "did not allow ev to use cozy's model" in res["content"]


def test_elicitation_form_on_the_terminal(everything_home: Path, tmp_path: Path) -> None:
    from tty_helpers import TtyCozy

    t = TtyCozy(["tools", "call", "ev.trigger-elicitation-request", "--yes"], tmp_path / "out")
    try:
        screen = t.expect(r"answer\? \[y/N\]")
        assert "MCP server 'ev' asks:" in screen
        t.send(b"y\n")
        t.expect(r"name \(string; required\)")  # fields are asked one by one
        t.send(b"Ada\n")
        for _ in range(12):  # the optional fields (a boolean, numbers, enums...): left empty
            t.seen = b""
            t.expect(r": $")
            t.send(b"\n")
        assert t.wait() == 0, t.terminal
    finally:
        t.close()
    assert '"action": "accept"' in t.stdout and "Ada" in t.stdout


async def test_tui_prompt_and_resource_commands(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    from tui_helpers import make_app, ready, send

    from cozy.tui.screens.info import InfoScreen

    server = {**npm_server("everything", "stdio"), "cwd": str(cozy_home)}
    app = make_app(
        cozy_home,
        fake_model.url,
        f"tools:\n  provider: mcp\n  servers:\n    ev: {json.dumps(server)}\n",
    )
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app)
        fake_model.queue_reply("noted")
        await send(pilot, "/prompt ev.args-prompt city=Lyon briefly")
        sent = fake_model.turn_requests()[-1]["messages"][-1]["content"]
        assert "Lyon" in sent and sent.endswith("briefly")
        fake_model.queue_reply("read")
        await send(pilot, f"/resource ev:{DOC} what is this?")
        sent = fake_model.turn_requests()[-1]["messages"][-1]["content"]
        assert f'<resource ref="ev:{DOC}">' in sent and sent.endswith("what is this?")
        await send(pilot, "/prompt")
        assert isinstance(app.screen, InfoScreen)


def test_cli_prompts_table_with_a_prompt_that_has_no_description(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    """A server may give a prompt an empty description: the table still prints."""
    import sys

    from mcp_servers.helpers import SERVER

    server = {"command": sys.executable, "args": [str(SERVER)]}
    write_engines(
        cozy_home,
        fake_model.url,
        f"tools:\n  provider: mcp\n  servers:\n    t: {json.dumps(server)}\n",
    )
    r = cozy("tools", "prompts")
    assert r.returncode == 0, r.stderr
    assert "t.bare" in r.stdout and "Traceback" not in r.stderr
    r = cozy("tools", "prompts", "--json")
    assert {"name": "t.bare", "description": ""}.items() <= next(
        p for p in json.loads(r.stdout) if p["name"] == "t.bare"
    ).items()
