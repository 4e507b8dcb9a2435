"""Files in `cozy chat` (Pilot against the fake model): `/file PATH`, `/file PATH --
question`, `@path` in a message; regenerate, edit and undo keep a message's files;
each text is stored once, read back whole."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tui_helpers import make_app, ready, send, settle, views, wait_for

from cozy.testing import FakeModelServer
from cozy.tui.widgets.prompt import PromptArea


def last_user(fake: FakeModelServer) -> str:
    msgs = fake.turn_requests()[-1]["messages"]
    return str(next(m for m in reversed(msgs) if m["role"] == "user")["content"])


def banner(app: Any) -> str:
    widget = app.query_one("#edit-banner")
    return str(widget.render()) if widget.has_class("-shown") else ""


async def test_file_command_and_at_path_attach_files_stored_once(
    cozy_home: Path, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.md"
    notes.write_text("ship on Friday\n")
    code = tmp_path / "code.py"
    code.write_text("print('hi')\n")
    fenced_notes = f"{notes}:\n```\nship on Friday\n```"
    app = make_app(cozy_home, fake_model.url)
    async with app.run_test(size=(110, 34)) as pilot:
        await ready(app)
        store = app.runtime.store
        # /file: attached to the next message, and the banner says so
        await send(pilot, f"/file {notes}")
        assert "notes.md" in banner(app) and "next message" in banner(app)
        assert fake_model.turn_requests() == []
        fake_model.queue_reply("Friday")
        await send(pilot, "when do we ship?")
        await settle(pilot)
        assert last_user(fake_model) == f"{fenced_notes}\n\nwhen do we ship?"
        assert banner(app) == ""  # taken by that message
        sid = app.session_id
        assert sid is not None
        rows = await store.list_messages(sid)
        assert rows[0].content == f"{fenced_notes}\n\nwhen do we ship?"
        assert rows[0].typed == "when do we ship?"

        # @path in the text; the same file again is linked, not stored again
        fake_model.queue_reply("it prints hi")
        await send(pilot, f"what does @{code} print, given @{notes}?")
        await settle(pilot)
        sent = last_user(fake_model)
        assert sent.startswith(f"{code}:\n```\nprint('hi')\n```\n\n{fenced_notes}\n\n")
        assert sent.endswith(f"what does {code} print, given {notes}?")

        # /file PATH -- question: sent at once
        fake_model.queue_reply("yes")
        await send(pilot, f"/file {code} -- is it python?")
        await settle(pilot)
        assert last_user(fake_model) == f"{code}:\n```\nprint('hi')\n```\n\nis it python?"
        kept = {f.source: f.messages for f in await app.runtime.fragments.list()}
        assert kept == {str(notes): 2, str(code): 2}  # two texts, however many messages

        # a file that is not there: said, nothing attached, nothing sent
        before = len(fake_model.turn_requests())
        await send(pilot, f"/file {tmp_path / 'nope.txt'}")
        await pilot.pause()
        assert banner(app) == "" and len(fake_model.turn_requests()) == before

        # ctrl+r: answered again in a branch, with the file sent again (and linked)
        fake_model.queue_reply("yes, python")
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert app.session_id != sid
        assert last_user(fake_model) == f"{code}:\n```\nprint('hi')\n```\n\nis it python?"

        # /undo: your words back in the prompt, the file attached to the next message
        await send(pilot, "/undo")
        await settle(pilot)
        prompt = app.query_one(PromptArea)
        assert prompt.text == "is it python?" and "code.py" in banner(app)
        fake_model.queue_reply("still python")
        await pilot.press("enter")
        await settle(pilot)
        await wait_for(lambda: last_user(fake_model).endswith("is it python?"))
        assert last_user(fake_model).startswith(f"{code}:\n```\nprint('hi')")
        texts = await app.runtime.fragments.list()
        assert len(texts) == 2  # still one copy of each text

        # /edit: the message's words in the prompt; the file goes with the edit
        await send(pilot, "/edit")
        assert prompt.text == "is it python?" and "with " in banner(app)
        prompt.load_text("is it python 3?")
        fake_model.queue_reply("3")
        await pilot.press("enter")
        await settle(pilot)
        assert last_user(fake_model) == f"{code}:\n```\nprint('hi')\n```\n\nis it python 3?"

        # a failed answer gives your words back with the file still attached
        fake_model.fail_next(500)
        await send(pilot, f"/file {notes} -- will it fail?")
        await settle(pilot)
        assert prompt.text == "will it fail?" and "notes.md" in banner(app)
        prompt.clear()
        await send(pilot, "/file")  # alone: drops them
        assert banner(app) == ""

    # reopened: the history shows each question whole
    again = make_app(cozy_home, fake_model.url)
    async with again.run_test(size=(110, 34)):
        await ready(again)
        await again.load_session(sid)
        shown = [v for v in views(again) if v[0] == "user"]
        assert shown[0][2] == f"{fenced_notes}\n\nwhen do we ship?"
        assert shown[1][2].startswith(f"{code}:\n```\nprint('hi')")


async def test_file_command_sends_images_to_a_vision_model(
    cozy_home: Path, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    import base64

    from test_cli_inputs import png

    from cozy.tui.widgets.messages import ChatLog, MessageView

    image = tmp_path / "red.png"
    image.write_bytes(png())
    app = make_app(cozy_home, fake_model.url, model="ollama:llava")
    async with app.run_test(size=(110, 34)) as pilot:
        await ready(app)
        fake_model.queue_reply("red")
        await send(pilot, f"/file {image} -- what colour?")
        await settle(pilot)
        msg = fake_model.turn_requests()[-1]["messages"][-1]
        assert msg["content"] == "what colour?"
        assert msg["images"] == [base64.b64encode(png()).decode()]

    # a model that reads text only says so; nothing is sent to it
    text_only = make_app(cozy_home, fake_model.url, model="ollama:fake-model")
    async with text_only.run_test(size=(110, 34)) as pilot:
        await ready(text_only)
        before = len(fake_model.turn_requests())
        await send(pilot, f"/file {image} -- what colour?")
        await settle(pilot)
        errors = [v.text for v in text_only.query_one(ChatLog).query(MessageView)]
        assert any("reads text only" in t for t in errors), errors
        assert len(fake_model.turn_requests()) == before
