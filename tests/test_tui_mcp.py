"""MCP in the TUI (Textual Pilot) against server-everything from npm: a server's form
(elicitation) as a modal, and a running tool's progress on its line in the chat."""

from __future__ import annotations

import json
from pathlib import Path

from npm_servers import npm_server
from textual.widgets import Button, Input, Static
from tui_helpers import make_app, ready, send, settle, tui_running, wait_for

from cozy.testing import FakeModelServer
from cozy.tui.screens.elicitation import ElicitationScreen
from cozy.tui.widgets.messages import ToolCallView

LEVELS = {"trigger-elicitation-request": "read-only", "trigger-long-running-operation": "read-only"}


async def test_elicitation_modal_and_progress(cozy_home: Path, fake_model: FakeModelServer) -> None:
    server = {**npm_server("everything", "stdio"), "cwd": str(cozy_home), "levels": LEVELS}
    extra = f"tools:\n  provider: mcp\n  servers:\n    ev: {json.dumps(server)}\n"
    async with tui_running(cozy_home, fake_model.url, extra) as rt:
        rt.personalities.all()["assistant"].tools = ["ev.*"]
        app = make_app(cozy_home, fake_model.url, extra, runtime=rt)
        async with app.run_test(size=(110, 45)) as pilot:
            await ready(app)
            # progress notifications show on the call's line while it runs
            call = ("ev__trigger-long-running-operation", {"duration": 2, "steps": 2})
            fake_model.queue_reply(tool_calls=[call])
            fake_model.queue_reply("done")
            await send(pilot, "take your time")
            await settle(pilot)
            [view] = list(app.query(ToolCallView))
            assert view.state == "ok" and view.progress_text == "2/2", view.result
            # the server's form: required fields are checked in the form, then sent
            fake_model.queue_reply(tool_calls=[("ev__trigger-elicitation-request", {})])
            fake_model.queue_reply("thanks")
            # app.send, not the prompt: Pilot's key presses wait for an idle screen, and
            # the modal keeps the screen busy until the form is answered
            app.send("ask me")
            await wait_for(lambda: bool(app.screen.query("#f-name")), 60)  # composed
            screen = app.screen
            assert isinstance(screen, ElicitationScreen) and screen.server == "ev"
            assert screen.query_one("#f-integer", Input).value == "42"  # the schema default
            screen.query_one("#f-name", Input).value = ""
            screen.query_one("#submit", Button).press()
            problem = screen.query_one("#problem", Static)
            await wait_for(lambda: "name is required" in str(problem.render()), 20)
            assert app.screen is screen
            screen.query_one("#f-name", Input).value = "Ada Lovelace"
            screen.query_one("#submit", Button).press()
            await wait_for(lambda: app.screen is not screen, 20)
            await settle(pilot)
            last = list(app.query(ToolCallView))[-1]
            assert last.state == "ok" and "Ada Lovelace" in last.result, last.result
            # Esc cancels: the server is told, the turn goes on
            fake_model.queue_reply(tool_calls=[("ev__trigger-elicitation-request", {})])
            fake_model.queue_reply("fine")
            app.send("ask again")
            await wait_for(lambda: bool(app.screen.query("#f-name")), 60)
            app.screen.action_cancel()  # what Esc runs
            await settle(pilot)
            last = list(app.query(ToolCallView))[-1]
            assert last.state == "ok" and "cancel" in last.result.lower(), last.result
