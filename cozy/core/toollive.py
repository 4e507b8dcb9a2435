"""What a running tool tells the turn while it runs: progress and log messages.

The tools engine calls `on_progress` / `on_log` from its ToolContext.extra (MCP
progress and logging notifications); here they become `ToolProgress` / `ToolLog`
events on the round's queue, which the tool loop yields as they come.

Log messages are filtered by the turn's `log_level` (in ctx.extra; the same level
names and "at least" meaning as `cozy tools logs --level`; "off" shows none) and
bounded per call: a server that logs in a loop costs at most MAX_LIVE_LOGS events
and one line saying where the rest are.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable
from typing import Any

from cozy.core.events import ChatEvent, ToolLog, ToolProgress
from cozy.core.types import LOG_LEVELS, ToolCall, ToolSpec, log_at_least
from cozy.engines.base import ToolContext

MAX_LIVE_LOGS = 20  # per call and band; every message is kept in the server's log anyway
DEFAULT_LOG_LEVEL = "info"
LOG_CHOICES = (*LOG_LEVELS, "off")


def live_context(
    ctx: ToolContext, call: ToolCall, spec: ToolSpec, news: asyncio.Queue[ChatEvent]
) -> ToolContext:
    """A context whose `on_progress` and `on_log` turn the tool's notifications into
    events for this call."""
    floor = str(ctx.extra.get("log_level") or DEFAULT_LOG_LEVEL)
    # two allowances, so a chatty server's info lines never crowd out its warnings
    shown = {False: 0, True: 0}  # severe (warning or above)? -> events sent
    told = False

    def on_progress(progress: float | None, total: float | None, message: str | None) -> None:
        news.put_nowait(ToolProgress(call.id, spec.name, progress, total, message))

    def on_log(entry: dict[str, Any]) -> None:
        nonlocal told
        level = str(entry.get("level") or "info")
        if floor == "off" or not log_at_least(level, floor):
            return
        server = str(entry.get("server") or spec.server)
        severe = log_at_least(level, "warning")
        if shown[severe] >= MAX_LIVE_LOGS:
            if not told:  # once: the rest are only in the server's log
                told = True
                text = (
                    f"more log messages from {server} during this call are not shown here; "
                    f"`cozy tools logs {server}` has them"
                )
                news.put_nowait(ToolLog(call.id, spec.name, server, "notice", text, "cozy"))
            return
        shown[severe] += 1
        logger = entry.get("logger")
        news.put_nowait(
            ToolLog(
                call.id,
                spec.name,
                server,
                level,
                str(entry.get("text") or ""),
                str(logger) if logger else None,
            )
        )

    return dataclasses.replace(
        ctx, extra={**ctx.extra, "on_progress": on_progress, "on_log": on_log}
    )


async def run_with_news(
    work: Awaitable[Any], news: asyncio.Queue[ChatEvent], box: list[Any]
) -> AsyncIterator[ChatEvent]:
    """Run `work`, yielding the progress events it makes; its result ends up in `box`."""
    task = asyncio.ensure_future(work)
    try:
        while not task.done():
            getter = asyncio.ensure_future(news.get())
            done, _ = await asyncio.wait({task, getter}, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                yield getter.result()
            else:
                getter.cancel()
        while not news.empty():
            yield news.get_nowait()
        box.append(task.result())
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
