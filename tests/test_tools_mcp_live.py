"""What a running MCP tool says while it runs, as a user sees it: the server's log
messages (notifications/message) as `tool_log` events of `cozy run --json --stream`,
in `--json`, on stderr, and on the call's row in the TUI; filtered by level like
`cozy tools logs --level` and bounded per call. Against our test server and the npm
reference server (server-everything)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from helpers import write_engines
from mcp_servers.helpers import SERVER
from npm_servers import npm_server
from tools_cli import configured, cozy  # noqa: F401  (the fixture)
from tui_helpers import make_app, ready, send, settle, tui_running

from cozy.core.toollive import MAX_LIVE_LOGS
from cozy.core.types import LOG_LEVELS
from cozy.testing import FakeModelServer
from cozy.tui.widgets.messages import ToolCallView


def lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def test_stream_shows_tool_logs_filtered_and_bounded(configured: FakeModelServer) -> None:  # noqa: F811
    chatty = ("test__chatty", {"count": 30})
    configured.queue_reply(tool_calls=[chatty])
    configured.queue_reply("logged")
    r = cozy("run", "--json", "--stream", "-p", "tester", "go")
    assert r.returncode == 0, r.stderr
    events = lines(r.stdout)
    logs = [e for e in events if e["type"] == "tool_log"]
    # debug is below the default level (info); 20 info lines, one line saying where
    # the rest are, and the error, which the info lines cannot crowd out
    info = [e["text"] for e in logs if e["level"] == "info"]
    assert info == [f"step {i} of 30" for i in range(1, MAX_LIVE_LOGS + 1)]
    [more] = [e for e in logs if e["level"] == "notice"]
    assert "cozy tools logs test" in more["text"]
    [error] = [e for e in logs if e["level"] == "error"]
    assert error["text"] == "something looked wrong" and error["logger"] == "chatty"
    assert error["server"] == "test" and error["name"] == "test.chatty"
    assert len(logs) == MAX_LIVE_LOGS + 2
    # live: between the call and its result, for that call
    kinds = [e["type"] for e in events]
    assert kinds.index("tool_call") < kinds.index("tool_log") < kinds.index("tool_result")
    [call] = [e["call"] for e in events if e["type"] == "tool_call"]
    assert {e["call_id"] for e in logs} == {call["id"]}
    # every message is still in the server's log, whatever was shown live
    r = cozy("tools", "logs", "test", "--level", "info", "-n", "100", "--json")
    assert r.returncode == 0, r.stderr
    assert sum(1 for row in json.loads(r.stdout) if row["text"].startswith("step ")) == 30


def test_tool_logs_levels_in_json_and_plain_output(configured: FakeModelServer) -> None:  # noqa: F811
    chatty = ("test__chatty", {"count": 2})
    configured.queue_reply(tool_calls=[chatty])
    configured.queue_reply("ok")
    r = cozy("run", "--json", "--tool-logs", "warning", "-p", "tester", "go")
    assert r.returncode == 0, r.stderr
    body = json.loads(r.stdout)
    assert [(e["level"], e["text"]) for e in body["tool_logs"]] == [
        ("error", "something looked wrong")
    ]
    configured.queue_reply(tool_calls=[chatty])
    configured.queue_reply("ok")
    r = cozy("run", "--json", "--stream", "--tool-logs", "off", "-p", "tester", "go")
    assert r.returncode == 0, r.stderr
    assert [e for e in lines(r.stdout) if e["type"] == "tool_log"] == []
    # plain text: the answer on stdout, the server's lines on stderr
    configured.queue_reply(tool_calls=[chatty])
    configured.queue_reply("fine")
    r = cozy("run", "--no-md", "-p", "tester", "go")
    assert r.returncode == 0 and r.stdout.strip() == "fine", r.stderr
    assert "[test chatty info: step 2 of 2]" in r.stderr
    assert "[test chatty error: something looked wrong]" in r.stderr
    assert "debug detail" not in r.stderr
    r = cozy("run", "--tool-logs", "loud", "hi")
    assert r.returncode == 2 and "unknown --tool-logs level 'loud'" in r.stderr
    assert "warning" in r.stderr and "off" in r.stderr


async def test_tui_shows_tool_logs_on_the_calls_row(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    server = {"command": sys.executable, "args": [str(SERVER)], "cwd": str(cozy_home)}
    extra = f"tools:\n  provider: mcp\n  servers:\n    test: {json.dumps(server)}\n"
    async with tui_running(cozy_home, fake_model.url, extra) as rt:
        rt.personalities.all()["assistant"].tools = ["test.*"]
        app = make_app(cozy_home, fake_model.url, extra, runtime=rt)
        async with app.run_test(size=(110, 45)) as pilot:
            await ready(app)
            fake_model.queue_reply(tool_calls=[("test__chatty", {"count": 5})])
            fake_model.queue_reply("done")
            await send(pilot, "log something")
            await settle(pilot)
            [view] = list(app.query(ToolCallView))
            assert view.state == "ok", view.result
            # the newest lines on the row, and how many came before them
            assert list(view.log_lines) == [
                "test info: step 4 of 5",
                "test info: step 5 of 5",
                "test error: something looked wrong",
            ]
            assert view.logged == 6
            shown = str(view.render())
            assert "(3 earlier log lines)" in shown and "something looked wrong" in shown
            # an error is also a toast, seen even when the row has scrolled away
            toasts = [n.message for n in app._notifications]
            assert any("something looked wrong" in t for t in toasts), toasts


def test_server_everything_simulated_logging_during_a_call(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    """server-everything logs a message at a random level every 5 s once told to; those
    sent while another of its tools runs are that call's `tool_log` events."""
    levels = {
        "toggle-simulated-logging": "read-only",
        "trigger-long-running-operation": "read-only",
    }
    server = {
        **npm_server("everything", "stdio"),
        "cwd": str(cozy_home),
        "levels": levels,
        "log_level": "debug",  # logging/setLevel: the server sends every level
    }
    write_engines(
        cozy_home,
        fake_model.url,
        f"tools:\n  provider: mcp\n  servers:\n    ev: {json.dumps(server)}\n",
    )
    fake_model.queue_reply(tool_calls=[("ev__toggle-simulated-logging", {})])
    long_op = {"duration": 11, "steps": 1}
    fake_model.queue_reply(tool_calls=[("ev__trigger-long-running-operation", long_op)])
    fake_model.queue_reply("heard it")
    args = ["run", "--json", "--stream", "--tool-logs", "debug", "--allow-tools", "ev.*", "go"]
    r = cozy(*args)
    assert r.returncode == 0, r.stderr
    events = lines(r.stdout)
    # (the fake model numbers its calls per round: the name tells them apart)
    during = [
        e
        for e in events
        if e["type"] == "tool_log" and e["name"] == "ev.trigger-long-running-operation"
    ]
    # 11 s at one message per 5 s: at least two, whatever their random levels (the
    # server also logs other things, e.g. "Roots updated" once it has cozy's roots)
    simulated = [e for e in during if re.search(r"level.message", e["text"])]
    assert len(simulated) >= 2, [e["text"] for e in during]
    assert all(e["server"] == "ev" and e["level"] in LOG_LEVELS for e in during)
    # each carries the level the server gave it ("Notice-level message" is a notice)
    assert all(e["text"].lower().startswith(e["level"]) for e in simulated), simulated
    # the rest of the stream is as before: the call's result after its log lines
    kinds = [e["type"] for e in events]
    assert kinds.index("tool_log") < len(kinds) - 1 - kinds[::-1].index("tool_result")
