"""`cozy chat` streaming cost: the arriving block repaints without relayout, GC stays short."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

from textual.content import Content
from textual.widgets import Markdown, Static
from tui_helpers import make_app, ready, settle, wait_for

from cozy.testing import FakeModelServer
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
    before = gc.get_threshold()
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
        tail = answer.query_one(".tail", Static)
        samples = clipped = 0
        full_gc_thresholds: set[int] = set()
        while app.busy:
            full_gc_thresholds.add(gc.get_threshold()[2])
            stream = answer.stream
            width = tail.content_region.width
            if stream is not None and not stream.stopped and tail.display and width > 0:
                shown = str(tail.content)
                reserved = tail.styles.height
                assert reserved is not None and reserved.unit.name == "CELLS"
                # the reserved rows hold all of the arriving block: nothing is cut off
                if Content(shown).get_height(tail.styles, width) > reserved.value:
                    clipped += 1
                # the tail only ever holds the block still arriving
                assert safe_cut(shown) == 0
                samples += 1
            await asyncio.sleep(0.03)
        await settle(pilot)
        assert samples >= 10 and clipped == 0
        # no full GC pass while the answer streamed; the threshold is back afterwards
        assert min(full_gc_thresholds) >= 1_000_000
        assert gc.get_threshold() == before
        stream = answer.stream
        assert stream is not None and stream.stopped
        # most updates repainted the tail alone; the chat was laid out again only when
        # a block was finished or the tail outgrew its rows
        assert stream.updates - stream.layouts >= 5, (stream.updates, stream.layouts)
        # finished: the whole answer is Markdown blocks, in order; the tail is gone
        assert not tail.display and str(tail.styles.height) == "auto"
        blocks = [m.source for m in answer.query(Markdown)]
        assert "".join(blocks).strip() == text.strip() == answer.text.strip()
        assert len(blocks) >= 3
        assert answer.status == "complete"


async def test_start_up_heap_is_frozen(cozy_home: Path, fake_model: FakeModelServer) -> None:
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    app = make_app(cozy_home, fake_model.url)
    async with app.run_test(size=(100, 30)):
        await ready(app)
        # start-up's objects are out of the collector's generations: full collections
        # while an answer streams walk only what was allocated since
        assert gc.get_freeze_count() > 10_000
