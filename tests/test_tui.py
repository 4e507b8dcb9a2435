"""`cozy chat` driven with Textual's Pilot against the fake model server."""

from __future__ import annotations

from pathlib import Path

from helpers import EchoTools
from tui_helpers import make_app, open_rt, ready, send, settle, tui_running, views, wait_for

from cozy.core.toolloop import ToolRunner
from cozy.storage.store import NewMessage
from cozy.testing import FakeModelServer
from cozy.tui.screens.approval import ApprovalScreen
from cozy.tui.screens.info import InfoScreen
from cozy.tui.screens.picker import PickerScreen
from cozy.tui.widgets.messages import ChatLog, ToolCallView
from cozy.tui.widgets.prompt import PromptArea
from cozy.tui.widgets.sidebar import Sidebar
from cozy.tui.widgets.status import StatusBar


async def test_send_streams_and_persists(cozy_home: Path, fake_model: FakeModelServer) -> None:
    fake_model.queue_reply("Here is code:\n\n```python\nprint('hi')\n```\n\nDone.")
    app = make_app(cozy_home, fake_model.url)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app)
        await send(pilot, "show me code")
        assert [(r, s) for r, s, _ in views(app)] == [
            ("user", "complete"),
            ("assistant", "complete"),
        ]
        answer = app.query_one(ChatLog).last_answer()
        assert answer is not None and "print('hi')" in answer.text
        rows = await app.runtime.store.list_messages(app.session_id or "")
        assert (rows[0].role, rows[0].content) == ("user", "show me code")
        assert rows[1].content == answer.text and rows[1].status == "complete"
        status = app.query_one(StatusBar).info
        assert status.model == "ollama:fake-model" and status.tokens > 0
        assert status.latency_ms is not None and not status.running
        # the sidebar lists the new session; the copy action copies the code block
        assert app.query_one(Sidebar).ids == [app.session_id]
        await pilot.press("f8")
        assert app.state.copied == "print('hi')"
        # history: ctrl+up brings the last prompt back
        await pilot.press("ctrl+up")
        assert app.query_one(PromptArea).text == "show me code"


async def test_esc_cancels_and_keeps_partial_answer(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    fake_model.tokens_per_second = 40
    fake_model.queue_reply(" ".join(f"word{i}" for i in range(400)))
    app = make_app(cozy_home, fake_model.url)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app)
        app.query_one(PromptArea).load_text("tell me a long story")
        await pilot.press("enter")
        await wait_for(lambda: len(views(app)) == 2 and "word3" in views(app)[1][2])
        await pilot.press("escape")
        await settle(pilot)
        role, status, text = views(app)[1]
        assert (role, status) == ("assistant", "interrupted") and "word399" not in text
        rows = await app.runtime.store.list_messages(app.session_id or "")
        assert rows[-1].status == "interrupted" and rows[-1].content.startswith("word0")
        assert app.query_one(PromptArea).text == ""  # text came back: prompt not restored


async def test_esc_before_any_text_restores_the_prompt(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    fake_model.latency = 20  # Esc lands long before the first token, however loaded the machine
    app = make_app(cozy_home, fake_model.url)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app)
        app.query_one(PromptArea).load_text("slow question")
        await pilot.press("enter")
        await wait_for(lambda: app.busy and len(fake_model.chat_requests()) == 1)
        await pilot.press("escape")
        await settle(pilot)
        assert app.query_one(PromptArea).text == "slow question"
        rows = await app.runtime.store.list_messages(app.session_id or "")
        assert [(r.role, r.status) for r in rows] == [
            ("user", "complete"),
            ("assistant", "interrupted"),
        ]


async def test_switch_personality_by_command_and_picker(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    app = make_app(cozy_home, fake_model.url)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app)
        await send(pilot, "/personality coder")
        assert app.personality == "coder"
        await send(pilot, "hello")
        system = fake_model.turn_requests()[-1]["messages"][0]["content"]
        assert "expert software engineer" in system
        # the picker: f4, type to filter, enter
        await pilot.press("f4")
        assert isinstance(app.screen, PickerScreen)
        await pilot.press(*"tutor", "enter")
        await settle(pilot)
        assert app.personality == "tutor"
        row = await app.runtime.store.get_session(app.session_id or "")
        assert row.personality_id == "tutor"
        await send(pilot, "/personality nobody")
        assert app.personality == "tutor"  # unknown: a notice, no switch


async def test_new_rename_delete_undo_sessions(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    app = make_app(cozy_home, fake_model.url)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app)
        await send(pilot, "first session")
        first = app.session_id
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert app.session_id is None and views(app) == []
        await send(pilot, "second session")
        second = app.session_id
        assert first and second and first != second
        assert app.query_one(Sidebar).ids == [second, first]
        await pilot.press("f2")
        await pilot.pause()
        app.screen.query_one("#text-input").value = "Renamed!"  # type: ignore[attr-defined]
        await pilot.press("enter")
        await settle(pilot)
        row = await app.runtime.store.get_session(second)
        assert row.title == "Renamed!"
        # search by content
        app.query_one("#session-search").value = "first"  # type: ignore[attr-defined]
        await settle(pilot)
        assert app.query_one(Sidebar).ids == [first]
        app.query_one("#session-search").value = ""  # type: ignore[attr-defined]
        await settle(pilot)
        # delete the highlighted session from the sidebar, then undo
        app.query_one("#session-list").focus()
        app.query_one("#session-list").index = 1  # type: ignore[attr-defined]
        await pilot.press("delete")
        await settle(pilot)
        assert app.query_one(Sidebar).ids == [second]
        await pilot.press("ctrl+z")
        await settle(pilot)
        assert app.query_one(Sidebar).ids == [first, second]  # restored (and touched)
        # open the first session from the sidebar
        app.query_one("#session-list").index = 0  # type: ignore[attr-defined]
        await pilot.press("enter")
        await settle(pilot)
        assert app.session_id == first and views(app)[0][2] == "first session"


async def test_slash_commands(cozy_home: Path, fake_model: FakeModelServer) -> None:
    app = make_app(cozy_home, fake_model.url)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app)
        prompt = app.query_one(PromptArea)
        prompt.focus()
        await pilot.press("/", "e", "x")
        assert prompt.suggestion == "port"
        await pilot.press("tab")
        assert prompt.text == "/export"
        prompt.clear()
        await send(pilot, "/help")
        assert isinstance(app.screen, InfoScreen) and "/knowledge" in app.screen.body
        await pilot.press("escape")
        await send(pilot, "/tools")
        assert isinstance(app.screen, InfoScreen) and "builtin.now" in app.screen.body
        await pilot.press("escape")
        await send(pilot, "an exported chat")
        target = cozy_home / "out.md"
        await send(pilot, f"/export {target}")
        assert "an exported chat" in target.read_text()
        await send(pilot, "/model openai:gpt-test")
        await send(pilot, "hi again")
        assert fake_model.turn_requests()[-1].path == "/v1/chat/completions"
        await send(pilot, "/clear")
        assert views(app) == []
        await send(pilot, "/bogus")
        assert views(app) == []  # not sent to the model
        await send(pilot, "//etc is a dir")
        assert fake_model.turn_requests()[-1]["messages"][-1]["content"] == "/etc is a dir"
        await send(pilot, "/memory")
        assert "engine is off" in str(app.screen.query_one("#browser-body").render())
        await pilot.press("escape")
        await pilot.press("ctrl+t")
        await settle(pilot)
        assert (
            app.state.voice_problem and "no voice engine is configured" in app.state.voice_problem
        )
        await send(pilot, "/quit")
        assert app.return_code == 0


async def _tool_app(cozy_home: Path, fake_model: FakeModelServer):  # type: ignore[no-untyped-def]
    rt = await open_rt(cozy_home, fake_model.url)
    tools = EchoTools()
    rt.orchestrator.tools = ToolRunner(tools, audit=rt.store)
    rt.personalities.all()["assistant"].tools = ["test.*"]
    fake_model.queue_reply(tool_calls=[("test__write", {"text": "note"})])
    fake_model.queue_reply("finished")
    return rt, tools


async def test_tool_approval_approve_and_deny(cozy_home: Path, fake_model: FakeModelServer) -> None:
    rt, tools = await _tool_app(cozy_home, fake_model)
    app = make_app(cozy_home, fake_model.url, runtime=rt)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await ready(app)
            app.query_one(PromptArea).load_text("write it")
            await pilot.press("enter")
            await wait_for(lambda: isinstance(app.screen, ApprovalScreen))
            assert app.screen.tool == "test.write" and app.screen.level == "write"
            await pilot.press("y")
            await settle(pilot)
            assert tools.calls == [("test.write", {"text": "note"})]
            view = app.query_one(ToolCallView)
            assert view.state == "ok" and "test.write:note" in view.result and "once" in view.result
            assert views(app)[-1][2] == "finished"
            # deny: the tool never runs, the model is told
            fake_model.queue_reply(tool_calls=[("test__write", {"text": "again"})])
            fake_model.queue_reply("ok, skipped")
            app.query_one(PromptArea).load_text("write again")
            await pilot.press("enter")
            await wait_for(lambda: isinstance(app.screen, ApprovalScreen))
            await pilot.press("n")
            await settle(pilot)
            assert len(tools.calls) == 1
            last = list(app.query(ToolCallView))[-1]
            assert last.state == "error" and "denied" in last.result
            audit = await rt.store.list_audit()
            assert sorted(a["decision"] for a in audit) == ["deny", "once"]
    finally:
        await rt.close()


async def test_context_panel_shows_what_went_in(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    from helpers import SleepyKnowledge, SleepyMemory, SleepyProfile

    from cozy.core.context import ContextService
    from cozy.tui.widgets.context_panel import ContextPanel

    async with tui_running(cozy_home, fake_model.url) as rt:
        rt.orchestrator.context = ContextService(
            knowledge=SleepyKnowledge(),
            profile=SleepyProfile(),
            memory=SleepyMemory(fail=True),
        )
        app = make_app(cozy_home, fake_model.url, runtime=rt)
        async with app.run_test(size=(120, 30)) as pilot:
            await ready(app)
            panel = app.query_one(ContextPanel)
            assert not panel.display
            await pilot.press("f3")
            assert panel.display
            await send(pilot, "what is the wifi password?")
            text = str(panel.query_one("#context-text").render())
            assert "notes/wifi.md#rotation" in text
            assert "basic_info.name" in text
            assert "memory: RuntimeError: memory index corrupt" in text
            assert "knowledge:" in text and " ms" in text
            assert app.query_one(StatusBar).info.degraded
            assert "degraded" in str(app.query_one(StatusBar).render())


async def test_no_model_reachable_still_browses(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    rt = await open_rt(cozy_home, fake_model.url)
    row = await rt.store.create_session("local", "assistant", title="old chat")
    await rt.store.add_messages(
        row.id, [NewMessage("user", "kept"), NewMessage("assistant", "yes")]
    )
    await rt.close()
    app = make_app(cozy_home, "http://127.0.0.1:9", check_model=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app)
        await settle(pilot)
        notices = [str(n.render()) for n in app.query(".notice")]
        assert any("No model reachable" in n and "ollama serve" in n for n in notices)
        assert app.query_one(Sidebar).ids == [row.id]
        await send(pilot, "hello?")
        assert views(app)[-1][0] == "error"
        assert app.query_one(PromptArea).text == "hello?"  # kept to retry
        app.query_one("#session-list").focus()
        app.query_one("#session-list").index = 1  # type: ignore[attr-defined]
        await pilot.press("enter")
        await settle(pilot)


async def test_resume_last_and_corrupt_history(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    rt = await open_rt(cozy_home, fake_model.url)
    row = await rt.store.create_session("local", "coder", title="with a bad row")
    await rt.store.add_messages(
        row.id,
        [
            NewMessage("user", "question one"),
            NewMessage("assistant", "partial", status="interrupted"),
            NewMessage("wizard", "???"),  # a row no face knows how to show
            NewMessage("user", "question two"),
            NewMessage("assistant", "answer two"),
        ],
    )
    await rt.close()
    app = make_app(cozy_home, fake_model.url, session="last")
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app)
        await settle(pilot)
        assert app.session_id == row.id and app.personality == "coder"
        got = views(app)
        assert [(r, s) for r, s, _ in got] == [
            ("user", "complete"),
            ("assistant", "interrupted"),
            ("error", "corrupt"),
            ("user", "complete"),
            ("assistant", "complete"),
        ]
        assert "unknown role 'wizard'" in got[2][2]
        await send(pilot, "question three")
        sent = fake_model.turn_requests()[-1]["messages"]
        assert sent[-1]["content"] == "question three" and len(sent) >= 4


async def test_huge_paste_and_resize_while_streaming(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    from textual import events

    fake_model.tokens_per_second = 400
    fake_model.add_rule(user_contains="stream please", text=" ".join(["chunk"] * 300))
    app = make_app(cozy_home, fake_model.url)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app)
        big = ("lorem ipsum dolor sit amet " * 8 + "\n") * 2000 + "END-OF-PASTE"
        prompt = app.query_one(PromptArea)
        prompt.focus()
        app.post_message(events.Paste(big))  # as the terminal driver does
        await pilot.pause()
        assert prompt.text == big
        await pilot.press("enter")
        await settle(pilot)
        # far over the context budget: a clear error naming the fix; the text stays in
        # the prompt and nothing is stored (a refusal writes no session, no message)
        role, _, text = views(app)[-1]
        assert role == "error" and "context_windows" in text  # the fix that works
        assert prompt.text == big  # kept in the box: nothing lost
        # a refused prompt is not stored (since 100c2fb): no junk session
        assert app.session_id is None or not await app.runtime.store.list_messages(app.session_id)
        # resize the terminal while an answer streams
        prompt.load_text("stream please")
        await pilot.press("enter")
        await wait_for(lambda: views(app)[-1][0] == "assistant" and "chunk" in views(app)[-1][2])
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        await pilot.resize_terminal(140, 40)
        await settle(pilot)
        assert views(app)[-1][1] == "complete" and views(app)[-1][2].count("chunk") == 300


async def test_keys_remapped_from_config(cozy_home: Path, fake_model: FakeModelServer) -> None:
    (cozy_home / "tui.yaml").write_text("keys:\n  app.new_session: ctrl+l\n", encoding="utf-8")
    app = make_app(cozy_home, fake_model.url)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app)
        await send(pilot, "one")
        assert app.session_id is not None
        await pilot.press("ctrl+l")
        await settle(pilot)
        assert app.session_id is None


async def test_bad_tui_config_exits_with_file_and_field(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    (cozy_home / "tui.yaml").write_text("keys: {}\ncolour: red\n", encoding="utf-8")
    app = make_app(cozy_home, fake_model.url)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
    assert app.return_code == 2


async def test_memory_and_profile_browsers_edit_forget_restore(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    extra = "memory: {provider: local, timeout: 5}\nprofile: {provider: local, timeout: 5}\n"
    async with tui_running(cozy_home, fake_model.url, extra) as rt:
        memory = await rt.engine("memory")
        profile = await rt.engine("profile")
        await memory.remember("local", "The user keeps bees on the roof.")  # type: ignore[union-attr]
        await profile.set_slot("local", "interest.hobby", "beekeeping")  # type: ignore[union-attr]
        app = make_app(cozy_home, fake_model.url, extra, runtime=rt)
        async with app.run_test(size=(100, 30)) as pilot:
            await ready(app)
            await send(pilot, "/memory")
            screen = app.screen
            await settle(pilot)
            assert [e.text for e in screen.entries] == ["The user keeps bees on the roof."]
            screen.query_one("#browser-list").focus()
            await pilot.press("f")
            await settle(pilot)
            assert screen.entries[0].removed
            active = await memory.list_memories("local")  # type: ignore[union-attr]
            assert active == []
            await pilot.press("r")
            await settle(pilot)
            assert not screen.entries[0].removed
            await pilot.press("e")
            await pilot.pause()
            app.screen.query_one("#text-input").value = "The user keeps two hives."
            await pilot.press("enter")
            await settle(pilot)
            texts = [m.text for m in await memory.list_memories("local")]  # type: ignore[union-attr]
            assert texts == ["The user keeps two hives."]
            await pilot.press("escape")
            await send(pilot, "/profile")
            await settle(pilot)
            assert [e.text for e in app.screen.entries] == ["interest.hobby: beekeeping"]
            app.screen.query_one("#browser-list").focus()
            await pilot.press("f")
            await settle(pilot)
            got = await profile.get_profile("local")  # type: ignore[union-attr]
            assert got.slots == []
            await pilot.press("r")
            await settle(pilot)
            got = await profile.get_profile("local")  # type: ignore[union-attr]
            assert [s.value for s in got.slots] == ["beekeeping"]


async def test_background_jobs_run_while_chatting(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    """The TUI runs the durable jobs a turn queues (memory extraction) without a `jobs run`."""
    import asyncio

    app = make_app(cozy_home, fake_model.url, "memory: {provider: local}\n")
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app)
        await send(pilot, "my cat is called Miso")
        jobs = app.runtime.jobs
        done = False
        for _ in range(1200):  # up to ~60 s: the worker runs in the app's loop, not in this test
            counts = await jobs.counts()
            if counts["done"] >= 1 and counts["pending"] + counts["running"] == 0:
                done = True
                break
            await asyncio.sleep(0.05)
        assert done, await jobs.counts()
        assert any(j.kind.startswith("memory") for j in await jobs.list(status="done"))
