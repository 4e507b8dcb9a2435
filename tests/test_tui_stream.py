"""`cozy chat` streaming cost: the arriving block repaints without relayout, GC stays short."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

from tui_helpers import make_app, ready, settle, wait_for

from cozy.testing import FakeModelServer
from cozy.tui.heap import full_gc_held
from cozy.tui.widgets.mdbody import MarkdownBody
from cozy.tui.widgets.messages import ChatLog, MessageView, safe_cut
from cozy.tui.widgets.prompt import PromptArea


def long_answer() -> str:
    paragraphs = [" ".join(f"word{p}x{i}" for i in range(110)) for p in range(3)]
    code = "```python\n" + "\n".join(f"value_{i} = {i} * 2" for i in range(8)) + "\n```"
    return "\n\n".join([paragraphs[0], code, paragraphs[1], paragraphs[2]])


async def test_streaming_tail_reserves_rows_and_skips_relayouts(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    text = long_answer()
    fake_model.tokens_per_second = 120
    fake_model.add_rule(user_contains="long answer", text=text)
    app = make_app(cozy_home, fake_model.url)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app)
        prompt = app.query_one(PromptArea)
        prompt.load_text("a long answer please")
        await pilot.press("enter")
        chat = app.query_one(ChatLog)
        await wait_for(lambda: chat.last_answer() is not None)
        answer = chat.last_answer()
        assert isinstance(answer, MessageView)
        body = answer.query_one(MarkdownBody)
        samples = clipped = 0
        full_gc_thresholds: set[int] = set()
        while app.busy:
            full_gc_thresholds.add(gc.get_threshold()[2])
            if body.streaming and body.content_size.width > 0:
                reserved = body.styles.height
                assert reserved is not None and reserved.unit.name == "CELLS"
                # the reserved rows hold all of the answer so far: nothing is cut off
                if body.rows > reserved.value:
                    clipped += 1
                # the plain-text tail only ever holds the block still arriving
                assert safe_cut(body.tail + "\n") == 0
                samples += 1
            await asyncio.sleep(0.03)
        await settle(pilot)
        assert samples >= 10 and clipped == 0
        # no full GC pass while the answer streamed
        assert min(full_gc_thresholds) >= 1_000_000
        stream = answer.stream
        assert stream is not None and stream.stopped
        # most updates repainted the answer alone; the chat was laid out again only
        # when the answer outgrew the rows held for it
        assert stream.updates - stream.layouts >= 5, (stream.updates, stream.layouts)
        # finished: the whole answer is Markdown blocks, in order; no tail, height is auto
        assert not body.streaming and not body.tail and str(body.styles.height) == "auto"
        assert "\n\n".join(body.blocks).strip() == text.strip() == answer.text.strip()
        assert len(body.blocks) >= 3
        assert answer.status == "complete"
        # the chat followed the answer down: anchored at the bottom, the end in view
        assert chat.scroll_y == chat.max_scroll_y > 0
        assert answer.region.bottom <= chat.region.bottom
        # rendered as Markdown: the fence is gone, the code and the words are there
        shown = [body.render_line(y).text for y in range(body.rows)]
        assert body.size.height == body.rows > 10
        assert not any("```" in line for line in shown)
        assert any("value_7 = 7 * 2" in line for line in shown)
        assert sum(line.count("word2x") for line in shown) == 110


async def test_start_up_heap_is_frozen(cozy_home: Path, fake_model: FakeModelServer) -> None:
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    app = make_app(cozy_home, fake_model.url)
    async with app.run_test(size=(100, 30)):
        await ready(app)
        # start-up's objects are out of the collector's generations: full collections
        # while an answer streams walk only what was allocated since
        assert gc.get_freeze_count() > 10_000


async def test_turn_garbage_is_collected_once_the_user_pauses(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    before = gc.get_threshold()
    app = make_app(cozy_home, fake_model.url)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app)
        app.idle_gc.idle_s = 3600  # "the user is typing": never idle long enough
        prompt = app.query_one(PromptArea)
        prompt.load_text("hello there")
        await pilot.press("enter")
        chat = app.query_one(ChatLog)
        await wait_for(lambda: not app.busy and chat.last_answer() is not None)
        answer = chat.last_answer()
        assert answer is not None and answer.status == "complete"
        touched = app.idle_gc.last_input
        await pilot.press("n", "e", "x", "t")
        assert prompt.text == "next" and app.idle_gc.last_input > touched
        # the turn is over but the user types: the full collection is still held off
        assert full_gc_held() and gc.get_threshold()[2] >= 1_000_000
        assert app.idle_gc.runs == 0
        app.idle_gc.idle_s = 0.0  # now the user pauses
        await wait_for(lambda: not full_gc_held())
        assert app.idle_gc.runs == 1
        assert gc.get_threshold() == before and gc.get_freeze_count() > 10_000
