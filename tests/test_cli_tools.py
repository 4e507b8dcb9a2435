"""`cozy tools ...` and `cozy run --allow-tools` as a user runs them: subprocesses,
a real MCP test server over stdio, the fake model over HTTP."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tools_cli import PROFILE, configured, cozy, our_servers  # noqa: F401 - fixture

from cozy.settings import Settings
from cozy.storage.store import Store
from cozy.storage.tool_grants import ToolGrants
from cozy.testing import FakeModelServer


def test_list(configured: FakeModelServer) -> None:  # noqa: F811
    r = cozy("tools", "list", "--json")
    assert r.returncode == 0, r.stderr
    tools = {t["name"]: t for t in json.loads(r.stdout)}
    assert tools["test.add"]["level"] == "read-only" and tools["test.add"]["server"] == "test"
    assert tools["test.delete_all"]["level"] == "dangerous"
    assert "tester" in tools["test.add"]["personalities"]
    assert "assistant" not in tools["test.add"]["personalities"]
    assert "assistant" in tools["builtin.now"]["personalities"]
    assert tools["test.add"]["parameters"]["required"] == ["a", "b"]
    r = cozy("tools", "list", "--server", "test")
    assert r.returncode == 0 and "test.write_note" in r.stdout and "builtin.now" not in r.stdout


def test_call(configured: FakeModelServer) -> None:  # noqa: F811
    r = cozy("tools", "call", "test.add", "a=2", "b=40")
    assert (r.returncode, r.stdout) == (0, "42\n"), r.stderr
    r = cozy("tools", "call", "test__add", "--args", '{"a": 1, "b": 1}', "--json")
    body = json.loads(r.stdout)
    assert (body["content"], body["decision"], body["is_error"]) == ("2", "auto", False)
    # a string field keeps its text even when it looks like JSON
    r = cozy("tools", "call", "test.env", "name=123")
    assert (r.returncode, r.stdout) == (0, "<unset>\n"), r.stderr


def test_call_asks_for_writes_unless_yes(configured: FakeModelServer) -> None:  # noqa: F811
    r = cozy("tools", "call", "test.write_note", "text=hello")
    assert r.returncode == 1
    assert "denied" in r.stderr and "--yes" in r.stderr
    r = cozy("tools", "call", "test.write_note", "text=hello", "--yes")
    assert (r.returncode, r.stdout) == (0, "stored note #1\n"), r.stderr


def test_call_bad_input(configured: FakeModelServer) -> None:  # noqa: F811
    r = cozy("tools", "call", "test.add", "a=two", "b=1")
    assert r.returncode == 1 and "'two' is not of type 'integer'" in r.stderr
    r = cozy("tools", "call", "test.ad")
    assert r.returncode == 2 and "unknown tool 'test.ad'" in r.stderr and "test.add" in r.stderr
    r = cozy("tools", "call", "test.add", "a")
    assert r.returncode == 2 and "key=value" in r.stderr
    r = cozy("tools", "call", "test.add", "--args", "[1]")
    assert r.returncode == 2 and "JSON object" in r.stderr


def test_servers(configured: FakeModelServer, cozy_home: Path) -> None:  # noqa: F811
    r = cozy("tools", "servers", "--json")
    assert r.returncode == 0, r.stderr
    rows = {s["name"]: s for s in json.loads(r.stdout)}
    assert rows["test"]["state"] == "running" and rows["test"]["pid"]
    assert rows["test"]["tool_count"] >= 10 and rows["builtin"]["tool_count"] >= 1
    # an unreachable server is reported with its error, and the exit code says so
    engines = cozy_home / "engines.yaml"
    engines.write_text(
        engines.read_text() + "    down: {url: 'http://127.0.0.1:9/mcp', startup_timeout: 5}\n"
    )
    r = cozy("tools", "servers")
    assert r.returncode == 1 and "failed" in r.stdout and "down" in r.stdout
    assert "running" in r.stdout  # the healthy server is still listed as running


def _grant(home: Path, tool: str, personality: str) -> None:
    async def go() -> None:
        store = await Store.open(Settings(home=home).db_url)
        try:
            await ToolGrants(store).add_grant("local", personality, tool)
        finally:
            await store.close()

    asyncio.run(go())


def test_grants_are_used_listed_and_revoked(configured: FakeModelServer, cozy_home: Path) -> None:  # noqa: F811
    _grant(cozy_home, "test.write_note", "tester")
    r = cozy("tools", "grants", "--json")
    assert [(g["tool"], g["personality"]) for g in json.loads(r.stdout)] == [
        ("test.write_note", "tester")
    ]
    # granted for tester: runs without --yes in another process
    r = cozy("tools", "call", "test.write_note", "text=a", "-p", "tester", "--json")
    body = json.loads(r.stdout)
    assert (body["decision"], body["content"]) == ("always", "stored note #1"), r.stderr
    # not for another personality (whose tools do not include it at all)
    r = cozy("tools", "call", "test.write_note", "text=b", "-p", "plain", "--yes")
    assert r.returncode == 1 and "personality 'plain' does not allow test.write_note" in r.stderr
    r = cozy("tools", "grants", "--revoke", "test.write_note")
    assert r.returncode == 0 and "revoked 1 grant" in r.stdout
    r = cozy("tools", "grants", "--revoke", "test.write_note")
    assert r.returncode == 2 and "no grant for test.write_note" in r.stderr
    r = cozy("tools", "call", "test.write_note", "text=c", "-p", "tester")
    assert r.returncode == 1 and "denied" in r.stderr
    assert cozy("tools", "grants").stdout.strip() == "no remembered approvals"


def test_run_allow_tools_yes(configured: FakeModelServer) -> None:  # noqa: F811
    configured.queue_reply(tool_calls=[("test__write_note", {"text": "from a script"})])
    configured.queue_reply("saved your note")
    r = cozy("run", "--json", "-p", "tester", "--allow-tools", "test.*", "--yes", "save a note")
    assert r.returncode == 0, r.stderr
    body = json.loads(r.stdout)
    [res] = body["tool_results"]
    assert (res["name"], res["content"], res["decision"]) == (
        "test.write_note",
        "stored note #1",
        "auto-approved",
    )
    assert body["text"] == "saved your note"
    # --yes approves only what --allow-tools names: other tools are not even offered
    configured.queue_reply(tool_calls=[("test__delete_all", {})])
    configured.queue_reply("could not")
    r = cozy("run", "--json", "-p", "tester", "--allow-tools", "test.add", "--yes", "wipe")
    body = json.loads(r.stdout)
    [res] = body["tool_results"]
    assert res["decision"] == "not-offered" and res["is_error"] and body["text"] == "could not"
    offered = [t["function"]["name"] for t in configured.turn_requests()[-2]["tools"]]
    assert offered == ["test__add"]
    # --yes alone does not approve a dangerous tool; --yes-dangerous does
    configured.queue_reply(tool_calls=[("test__delete_all", {})])
    configured.queue_reply("not allowed")
    r = cozy("run", "--json", "--allow-tools", "test.*", "--yes", "wipe")
    [res] = json.loads(r.stdout)["tool_results"]
    assert (res["decision"], res["is_error"]) == ("deny", True)
    configured.queue_reply(tool_calls=[("test__delete_all", {})])
    configured.queue_reply("wiped")
    r = cozy("run", "--json", "--allow-tools", "test.*", "--yes-dangerous", "wipe")
    [res] = json.loads(r.stdout)["tool_results"]
    assert (res["decision"], res["content"]) == ("auto-approved", "deleted"), r.stderr
    # --yes without --allow-tools approves nothing: a usage error naming the fix
    r = cozy("run", "--yes", "hi")
    assert r.returncode == 2 and "--allow-tools" in r.stderr


def test_allow_tools_reaches_beyond_the_personality(configured: FakeModelServer) -> None:  # noqa: F811
    """The README's `cozy run --allow-tools 'fs.*' --yes ...` with the default personality
    (whose globs do not name the server): the named tools are offered and approved."""
    configured.queue_reply(tool_calls=[("test__write_note", {"text": "tidy"})])
    configured.queue_reply("done")
    r = cozy("run", "--json", "--allow-tools", "test.*", "--yes", "tidy my notes")
    assert r.returncode == 0, r.stderr
    [res] = json.loads(r.stdout)["tool_results"]
    assert (res["content"], res["decision"]) == ("stored note #1", "auto-approved")
    # without --yes the tools are offered too; with no terminal to ask on, a write is denied
    configured.queue_reply(tool_calls=[("test__write_note", {"text": "x"})])
    configured.queue_reply("ok")
    r = cozy("run", "--json", "--allow-tools", "test.*", "note it")
    [res] = json.loads(r.stdout)["tool_results"]
    assert res["decision"] == "deny"
    offered = {t["function"]["name"] for t in configured.turn_requests()[-2]["tools"]}
    assert "test__write_note" in offered and "builtin__now" not in offered


def test_import_claude_config(configured: FakeModelServer, cozy_home: Path, tmp_path: Path) -> None:  # noqa: F811
    engines = cozy_home / "engines.yaml"
    engines.write_text("# my settings\n" + engines.read_text() + "\n# keep me\ncontext: {}\n")
    before = engines.read_text()
    claude = tmp_path / "claude_desktop_config.json"
    claude.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "time": {"command": "uvx", "args": ["mcp-server-time"]},
                    "my web": {"type": "http", "url": "http://127.0.0.1:9/mcp"},
                    "memory": {"command": "npx", "args": ["-y", "server-memory"]},
                }
            }
        )
    )
    r = cozy("tools", "import-claude-config", str(claude))
    assert r.returncode == 0 and "mcp-server-time" in r.stdout and "--write" in r.stdout
    # `memory` is cozy's own: imported under another name, and the user is told
    assert "server 'memory' imported as 'memory-mcp' (reserved" in r.stderr
    assert "memory-mcp:" in r.stdout
    assert engines.read_text() == before  # a dry run writes nothing
    r = cozy("tools", "import-claude-config", str(claude), "--write", "--json")
    report = json.loads(r.stdout)
    assert report["added"] == ["time", "my_web", "memory-mcp"] and report["written"]
    text = engines.read_text()
    assert text.startswith("# my settings\nai:\n") and "# keep me\ncontext: {}\n" in text
    assert Path(report["backup"]).read_text() == before
    r = cozy("tools", "list", "--server", "test", "--json")  # the old server is still there
    assert r.returncode == 0 and json.loads(r.stdout)
    r = cozy("tools", "servers", "--no-start", "--json")
    names = {s["name"]: s for s in json.loads(r.stdout)}
    assert names["my_web"]["transport"] == "streamable-http" and names["time"]["state"] == "idle"
    # bad input: nothing written, the message names the file and line
    claude.write_text('{"mcpServers": {\n  "x": }')
    r = cozy("tools", "import-claude-config", str(claude), "--write")
    assert r.returncode == 2 and f"{claude}:2" in r.stderr
    r = cozy("tools", "import-claude-config", str(tmp_path / "missing.json"))
    assert r.returncode == 2 and "no such file" in r.stderr
