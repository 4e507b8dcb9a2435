"""Regenerate, edit-and-resend (branches), undo and numbered code copy in `cozy chat`
(Pilot against the fake model; the store is read back to check nothing was lost)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tui_helpers import make_app, ready, send, settle, views, wait_for

from cozy.testing import FakeModelServer
from cozy.tui.screens.picker import PickerScreen
from cozy.tui.widgets.messages import ChatLog
from cozy.tui.widgets.prompt import PromptArea


def sent(fake: FakeModelServer) -> list[tuple[str, str]]:
    """The conversation the model was given last (system prompt left out)."""
    msgs = fake.turn_requests()[-1]["messages"]
    return [(m["role"], m["content"]) for m in msgs if m["role"] != "system"]


async def contents(app: Any, session_id: str) -> list[str]:
    return [m.content for m in await app.runtime.store.list_messages(session_id)]


async def test_regenerate_and_edit_branch_and_keep_the_original(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    app = make_app(cozy_home, fake_model.url)
    async with app.run_test(size=(110, 34)) as pilot:
        await ready(app)
        fake_model.queue_reply("a1")
        await send(pilot, "q1")
        fake_model.queue_reply("a2")
        await send(pilot, "q2")
        first = app.session_id
        assert first and await contents(app, first) == ["q1", "a1", "q2", "a2"]
        # ctrl+r: the last message answered again, in a new branch
        fake_model.queue_reply("a2 again")
        await pilot.press("ctrl+r")
        await settle(pilot)
        second = app.session_id
        assert second and second != first
        assert sent(fake_model) == [("user", "q1"), ("assistant", "a1"), ("user", "q2")]
        assert await contents(app, second) == ["q1", "a1", "q2", "a2 again"]
        assert await contents(app, first) == ["q1", "a1", "q2", "a2"]  # kept whole
        assert [v[2] for v in views(app)] == ["q1", "a1", "q2", "a2 again"]
        # /edit 1: your first message back in the prompt, marked as an edit
        await send(pilot, "/edit 1")
        prompt = app.query_one(PromptArea)
        assert prompt.text == "q1" and prompt.has_class("-editing")
        assert "editing #1" in str(app.query_one("#edit-banner").render())
        prompt.load_text("q1, said better")
        fake_model.queue_reply("a1 better")
        await pilot.press("enter")
        await wait_for(lambda: app.session_id not in (first, second))
        await settle(pilot)
        third = app.session_id
        assert third and sent(fake_model) == [("user", "q1, said better")]
        assert await contents(app, third) == ["q1, said better", "a1 better"]
        assert not prompt.has_class("-editing")
        # every branch is listed and reachable
        await pilot.press("f7")
        await wait_for(lambda: isinstance(app.screen, PickerScreen))
        picker = app.screen
        assert isinstance(picker, PickerScreen)
        assert [v for v, _ in picker.choices] == [first, second, third]
        await pilot.press(*"1. ", "enter")  # filter to the first branch's label
        await settle(pilot)
        assert app.session_id == first
        assert [v[2] for v in views(app)] == ["q1", "a1", "q2", "a2"]
        # esc leaves an edit and gives the draft back
        prompt.load_text("a draft")
        await pilot.press("f6")
        assert prompt.text == "q2" and prompt.has_class("-editing")
        await pilot.press("escape")
        assert prompt.text == "a draft" and not prompt.has_class("-editing")
        await send(pilot, "/edit 9")
        assert app.session_id == first  # no such message: nothing happened


async def test_undo_takes_back_the_last_exchange(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    app = make_app(cozy_home, fake_model.url)
    async with app.run_test(size=(110, 34)) as pilot:
        await ready(app)
        fake_model.queue_reply("a1")
        await send(pilot, "q1")
        fake_model.queue_reply("a2")
        await send(pilot, "q2 with a typo")
        sid = app.session_id
        assert sid
        await send(pilot, "/undo")
        assert await contents(app, sid) == ["q1", "a1"]
        assert [v[2] for v in views(app)] == ["q1", "a1"]
        prompt = app.query_one(PromptArea)
        assert prompt.text == "q2 with a typo"  # back for fixing
        prompt.load_text("q2 fixed")
        fake_model.queue_reply("a2 fixed")
        await pilot.press("enter")
        await settle(pilot)
        await wait_for(lambda: len(views(app)) == 4)
        assert sent(fake_model)[-1] == ("user", "q2 fixed")
        assert await contents(app, sid) == ["q1", "a1", "q2 fixed", "a2 fixed"]


async def test_every_code_block_is_numbered_and_copied(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    app = make_app(cozy_home, fake_model.url)
    async with app.run_test(size=(110, 34)) as pilot:
        await ready(app)
        fake_model.queue_reply("one:\n\n```python\nfirst()\n```\n\ntwo:\n\n```sh\nsecond\n```\n")
        await send(pilot, "show code")
        fake_model.queue_reply("three:\n\n```\nthird\n```\n")
        await send(pilot, "more")
        chat = app.query_one(ChatLog)
        assert chat.code == {1: "first()", 2: "second", 3: "third"}
        answers = [v for v in chat.query("MessageView") if getattr(v, "role", "") == "assistant"]
        notes = [str(v.query_one(".note").render()) for v in answers]
        assert "code [1]-[2]: /copy 1" in notes[0] and "code [3]: /copy 3" in notes[1]
        await send(pilot, "/copy 1")
        assert app.state.copied == "first()"
        await send(pilot, "/copy [2]")
        assert app.state.copied == "second"
        await pilot.press("f8")
        await settle(pilot)
        assert app.state.copied == "third"
        await send(pilot, "/copy 7")
        assert app.state.copied == "third"  # no block 7: a warning, nothing copied
        # reopened later, the same numbers
        sid = app.session_id
    again = make_app(cozy_home, fake_model.url, session=sid)
    async with again.run_test(size=(110, 34)) as pilot:
        await ready(again)
        await settle(pilot)
        assert again.query_one(ChatLog).code == {1: "first()", 2: "second", 3: "third"}
