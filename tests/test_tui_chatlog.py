"""`cozy chat` keeps a bounded widget tree: only the last items of a long session stay
mounted; the earlier ones come back, in order, when scrolled to or clicked."""

from __future__ import annotations

from pathlib import Path

from tui_helpers import make_app, ready, send, settle, tui_running, wait_for

from cozy.storage.store import NewMessage
from cozy.testing import FakeModelServer
from cozy.tui.widgets.mdbody import MarkdownBody
from cozy.tui.widgets.messages import ChatLog, EarlierItems, MessageView


async def _seed(home: Path, url: str, pairs: int) -> None:
    async with tui_running(home, url) as rt:
        s = await rt.store.create_session("local", "assistant", title="long")
        for i in range(pairs):
            await rt.store.add_messages(
                s.id,
                [NewMessage("user", f"question {i}"), NewMessage("assistant", f"**answer** {i}")],
            )


def _texts(chat: ChatLog) -> list[str]:
    return [v.text for v in chat.query_children(MessageView)]


async def test_long_history_mounts_the_last_items_and_brings_back_the_rest(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    await _seed(cozy_home, fake_model.url, 40)  # 80 messages
    expected = [t for i in range(40) for t in (f"question {i}", f"**answer** {i}")]
    app = make_app(cozy_home, fake_model.url, session="last")
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app)
        await settle(pilot)
        chat = app.query_one(ChatLog)
        assert (chat.keep, chat.step) == (20, 20)
        assert _texts(chat) == expected[-20:] and chat.hidden_items == 60
        marker = chat.query_one(EarlierItems)
        assert "60 earlier items" in str(marker.render())
        assert chat.children[0] is marker
        # each scroll to the top brings the previous `step` items back, in order, and
        # keeps the view where it was; the line goes with the last ones
        for hidden in (40, 20, 0):
            chat.scroll_home(animate=False)
            await wait_for(lambda hidden=hidden: chat.hidden_items == hidden)
            await settle(pilot)
            assert _texts(chat) == expected[-(80 - hidden) :]
            if hidden:
                assert f"{hidden} earlier items" in str(chat.query_one(EarlierItems).render())
                await wait_for(lambda: chat.scroll_y > 0)
        assert _texts(chat) == expected
        assert not list(chat.query_children(EarlierItems))
        # an answer still renders as Markdown once it is mounted again
        first = chat.query_children(MessageView)[1].query_one(MarkdownBody)
        assert first.blocks == ["**answer** 0"]
        assert "answer 0" in first.render_line(0).text


async def test_a_long_live_session_unmounts_old_items_and_rebuilds_them(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    app = make_app(cozy_home, fake_model.url)
    async with app.run_test(size=(100, 80)) as pilot:  # tall: all of it fits, to click
        await ready(app)
        chat = app.query_one(ChatLog)
        chat.keep, chat.step = 4, 2
        notes = []
        for i in range(4):
            await send(pilot, f"turn {i}")
            answer = chat.last_answer()
            assert answer is not None and answer.note
            notes.append(answer.note)
        await chat.add_notice("a notice", "warning")
        await settle(pilot)
        # at most keep + step items mounted; the oldest went behind the line
        items = chat.items()
        assert len(items) <= chat.keep + chat.step
        assert chat.hidden_items == 9 - len(items) > 0
        expected = [t for i in range(4) for t in (f"turn {i}", f"You said: turn {i}")]
        while chat.hidden_items:  # a click on the line brings back `step` more
            left = max(0, chat.hidden_items - chat.step)
            await pilot.click(EarlierItems, offset=(2, 0))  # left of any toast (top right)
            await wait_for(lambda left=left: chat.hidden_items == left)
        await settle(pilot)
        # rebuilt in order, with their text, status and note; the notice too
        assert _texts(chat) == expected
        views = list(chat.query_children(MessageView))
        assert all(v.status == "complete" for v in views)
        assert [v.note for v in views if v.role == "assistant"] == notes
        assert views[1].query_one(MarkdownBody).source == "You said: turn 0"
        assert str(chat.items()[-1].render()) == "a notice"
        # /clear empties both the mounted and the unmounted items
        chat.keep = 2
        await chat.add_notice("another", "info")
        await chat.reset()
        assert chat.hidden_items == 0 and not chat.children
