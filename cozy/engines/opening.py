"""A library a provider wraps (memory.mem0, knowledge.cognee): where it keeps its
files, and its client, opened once in the background.

Those libraries take seconds to import: `start()` at initialize means opening cozy
never waits for them. A failed open is reported at first use (`get()`), which opens
again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Generic, TypeVar

from cozy.core.errors import ConfigError
from cozy.engines.base import EngineContext

T = TypeVar("T")


def library_home(ctx: EngineContext, path: str | None, name: str, who: str) -> Path:
    """Where the library keeps its files: the `path` option, else `<data dir>/<name>`."""
    if path:
        return Path(path).expanduser()
    if ctx.settings is None:
        raise ConfigError(f"{who} needs settings", hint="open it through the Runtime")
    return Path(ctx.settings.data_dir) / name


class Opening(Generic[T]):
    def __init__(
        self,
        open_: Callable[[], Coroutine[Any, Any, T]],
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._open = open_
        self._on_error = on_error  # told of a failed background open (else: first use only)
        self._task: asyncio.Task[T] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._open())
        self._task.add_done_callback(self._quiet)

    def _quiet(self, task: asyncio.Task[T]) -> None:
        # retrieved here, so a failure is not also logged as 'never retrieved'
        exc = None if task.cancelled() else task.exception()
        if exc is not None and self._on_error is not None:
            self._on_error(exc)

    async def get(self) -> T:
        if self._task is None or (self._task.done() and self._task.exception()):
            self.start()
        assert self._task is not None
        return await asyncio.shield(self._task)

    async def cancel(self, *, wait: bool = False) -> None:
        """Stop an open still under way (`wait`: until it has stopped)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            if wait:
                with contextlib.suppress(BaseException):
                    await self._task
