"""A progress bar only where one is drawn.

rich.progress and the live display under it cost ~40 ms of start-up. On a console that
is not a terminal (a pipe, a file, a script) or with the bar disabled, a transient rich
bar draws nothing and prints the console's lines unchanged (off a terminal an enabled
bar ends with one blank line), so there a plain counter stands in: same console, same
calls, same output, without the import.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol


class TaskLike(Protocol):
    @property
    def completed(self) -> float: ...


class ProgressLike(Protocol):
    """What the commands use of rich's Progress."""

    @property
    def console(self) -> Any: ...

    @property
    def tasks(self) -> Sequence[TaskLike]: ...

    def add_task(self, description: str, *, total: float | None = ..., **fields: Any) -> Any: ...

    def update(self, task_id: Any, **changes: Any) -> None: ...

    def __enter__(self) -> Any: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Any: ...


@dataclass
class _Task:
    completed: float = 0.0
    total: float | None = None


class Counter:
    """Counts what a bar would show; draws nothing (the console's lines still print).
    `blank_line`: end with the blank line rich's enabled bar prints off a terminal."""

    def __init__(self, console: Any, *, blank_line: bool = False) -> None:
        self.console = console
        self.tasks: list[_Task] = []
        self.blank_line = blank_line

    def add_task(self, description: str, total: float | None = None, **fields: Any) -> int:
        self.tasks.append(_Task(total=total))
        return len(self.tasks) - 1

    def update(
        self,
        task_id: int,
        *,
        total: float | None = None,
        completed: float | None = None,
        advance: float | None = None,
        **fields: Any,
    ) -> None:
        task = self.tasks[task_id]
        if total is not None:
            task.total = total
        if advance is not None:  # rich's order: a given `completed` wins
            task.completed += advance
        if completed is not None:
            task.completed = completed

    def __enter__(self) -> Counter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.blank_line:
            self.console.print()


def progress_bar(console: Any, make: Callable[[], ProgressLike], *, disable: bool) -> ProgressLike:
    """`make()` (a transient rich Progress on `console`) when it would draw, else a Counter."""
    if disable:
        return Counter(console)
    if not console.is_terminal:
        return Counter(console, blank_line=True)
    return make()
