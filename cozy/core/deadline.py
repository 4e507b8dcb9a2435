"""A deadline that does not wait for the work it gives up on.

`asyncio.wait_for` / `asyncio.timeout` cancel the work and then wait until it has
unwound. A driver stuck on a frozen peer can take as long again to unwind (SQLAlchemy
over asyncpg, after a pre-ping on a blackholed Postgres, measured 10-12 s past a 5 s
limit), so a probe that must answer on time (`/ready`) leaves it to unwind alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")


def _retrieve(task: asyncio.Future[Any]) -> None:
    # the abandoned work's outcome is not wanted, but asyncio logs an error for a task
    # whose exception nobody read
    if not task.cancelled():
        task.exception()


async def answer_within(seconds: float, work: Awaitable[T]) -> T:
    """`work`'s result, or TimeoutError after `seconds` at most; late work is cancelled
    and left to finish unwinding in the background."""
    task = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not done:
        task.cancel()
        task.add_done_callback(_retrieve)
        raise TimeoutError
    return task.result()
