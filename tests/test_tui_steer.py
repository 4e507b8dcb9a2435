"""Steering `cozy chat` with the keyboard (Pilot): where the focus is and how to get
back, the sidebar on a narrow terminal, the approval modal's default, and the model
picker over every configured provider with the choice kept on the session."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Button, Input
from tui_helpers import make_app, ready, send, settle, wait_for

from cozy.testing import FakeModelServer
from cozy.tui.screens.picker import PickerScreen
from cozy.tui.widgets.messages import ChatLog
from cozy.tui.widgets.prompt import PromptArea
from cozy.tui.widgets.sidebar import Sidebar


async def test_focus_is_visible_and_esc_comes_back(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    app = make_app(cozy_home, fake_model.url)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app)
        prompt = app.query_one(PromptArea)
        assert prompt.has_focus
        await pilot.press("tab")  # the prompt hands the focus on
        search = app.query_one("#session-search", Input)
        sidebar = app.query_one(Sidebar)
        assert search.has_focus and sidebar.has_focus_within
        # the pane that has the keys is drawn differently (its edge lights up)
        assert sidebar.styles.border_right[0] == "thick"
        await pilot.press("escape")
        assert prompt.has_focus and sidebar.styles.border_right[0] != "thick"
        # typing while the chat log has the focus lands in the prompt
        app.query_one(ChatLog).focus()
        await pilot.press("h", "i")
        assert prompt.has_focus and prompt.text == "hi"


async def test_sidebar_yields_on_a_narrow_terminal(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    app = make_app(cozy_home, fake_model.url)
    async with app.run_test(size=(60, 24)) as pilot:
        await ready(app)
        await pilot.pause()
        sidebar = app.query_one(Sidebar)
        assert not sidebar.display  # 60 columns: the chat gets them all
        await pilot.press("ctrl+b")
        assert sidebar.display and sidebar.size.width <= 60 * 0.35 + 1
        await pilot.resize_terminal(120, 30)
        await pilot.pause()
        assert sidebar.display  # you opened it: it stays
        await pilot.press("ctrl+b")
        assert not sidebar.display
    wide = make_app(cozy_home, fake_model.url)
    async with wide.run_test(size=(120, 30)):
        await ready(wide)
        assert wide.query_one(Sidebar).display


async def test_approval_focus_starts_on_once(cozy_home: Path, fake_model: FakeModelServer) -> None:
    from cozy.tui.screens.approval import ApprovalScreen

    app = make_app(cozy_home, fake_model.url)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app)
        decided: list[str | None] = []
        app.push_screen(ApprovalScreen("t.write", "write", "{}", "assistant"), decided.append)
        await pilot.pause()
        focused = app.screen.focused
        assert isinstance(focused, Button) and focused.id == "once"
        await pilot.press("enter")
        await wait_for(lambda: decided == ["once"])


async def test_model_picker_lists_every_provider_and_keeps_the_choice(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    app = make_app(cozy_home, fake_model.url)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app)
        await send(pilot, "hello")
        await pilot.press("f5")
        await wait_for(lambda: isinstance(app.screen, PickerScreen))
        screen = app.screen
        assert isinstance(screen, PickerScreen)
        values = [v for v, _ in screen.choices]
        # engines.yaml configures ollama and openai: both lists are offered
        assert any(v.startswith("ollama:") for v in values), values
        assert any(v.startswith("openai:") for v in values), values
        choice = next(v for v in values if v.startswith("openai:"))
        await pilot.press(*choice, "enter")
        await settle(pilot)
        assert app.model == choice
        row = await app.runtime.store.get_session(app.session_id or "")
        assert row.model == choice
        await send(pilot, "again")
        assert fake_model.turn_requests()[-1].path == "/v1/chat/completions"
        session = app.session_id
    # reopening the session answers with the model chosen for it
    again = make_app(cozy_home, fake_model.url, session=session)
    async with again.run_test(size=(100, 30)) as pilot:
        await ready(again)
        await settle(pilot)
        assert again.model == choice
        await send(pilot, "third")
        assert fake_model.turn_requests()[-1].path == "/v1/chat/completions"


async def test_sidebar_lists_personalities_and_picks_one(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    from textual.widgets import ListView

    from cozy.tui.widgets.sidebar import PersonalityItem

    app = make_app(cozy_home, fake_model.url)
    async with app.run_test(size=(110, 34)) as pilot:
        await ready(app)
        await settle(pilot)
        items = list(app.query(PersonalityItem))
        ids = [i.pid for i in items]
        assert {"assistant", "coder", "tutor", "plain"} <= set(ids)
        marked = [i.pid for i in items if str(i.query_one("Label").render()).startswith("●")]
        assert marked == ["assistant"]
        view = app.query_one("#personality-list", ListView)
        view.focus()
        view.index = ids.index("coder")
        await pilot.press("enter")
        await settle(pilot)
        assert app.personality == "coder"
        items = list(app.query(PersonalityItem))
        marked = [i.pid for i in items if str(i.query_one("Label").render()).startswith("●")]
        assert marked == ["coder"]
        await pilot.press("escape")  # back to the prompt from the sidebar
        assert app.query_one(PromptArea).has_focus


async def test_templates_from_the_prompt(cozy_home: Path, fake_model: FakeModelServer) -> None:
    from cozy.tui.screens.info import InfoScreen

    templates = cozy_home / "templates"
    templates.mkdir()
    (templates / "short.yaml").write_text(
        "description: a short summary\nprompt: 'Summarize in $words words: $input'\n"
        "system: Be terse.\noptions: {temperature: 0.1}\n",
        encoding="utf-8",
    )
    app = make_app(cozy_home, fake_model.url)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app)
        await send(pilot, "/template")
        assert isinstance(app.screen, InfoScreen) and "short  words=" in app.screen.body
        await pilot.press("escape")
        fake_model.queue_reply("ok")
        await send(pilot, "/template short words=5 the long story")
        request = fake_model.turn_requests()[-1]
        msgs = request["messages"]
        assert msgs[-1]["content"] == "Summarize in 5 words: the long story"
        assert "Be terse." in msgs[0]["content"]
        assert request.get("options", {}).get("temperature") == 0.1 or (
            request.get("temperature") == 0.1
        )
        before = len(fake_model.turn_requests())
        await send(pilot, "/template short the story")  # words missing: said, not sent
        await send(pilot, "/template nope")
        assert len(fake_model.turn_requests()) == before
