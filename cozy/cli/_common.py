"""What every command shares: settings from the root options, the runtime, errors.

Errors are converted here, in one place: one clear line on stderr (and a JSON
error object on stdout in --json mode), exit 0 ok / 1 runtime error / 2 usage.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer

if TYPE_CHECKING:
    from cozy.core.personalities import Personality
    from cozy.runtime import Runtime
    from cozy.settings import Settings

T = TypeVar("T")


@dataclass
class CliState:
    overrides: dict[str, Any] = field(default_factory=dict)
    _settings: Settings | None = None

    def settings(self, **more: Any) -> Settings:
        from cozy.observability.logging import setup_logging
        from cozy.settings import load_settings

        if self._settings is None or more:
            self._settings = load_settings(**{**self.overrides, **more})
            setup_logging(self._settings.log_level, self._settings.log_format)
        return self._settings


state = CliState()


def fail(message: str, *, code: int = 1, as_json: bool = False, kind: str = "error") -> NoReturn:
    if as_json:
        body = {"error": {"type": kind, "message": message}}
        sys.stdout.write(json.dumps(body) + "\n")
    sys.stderr.write(f"error: {message}\n")
    raise typer.Exit(code)


def run_async(factory: Callable[[], Awaitable[T]], *, as_json: bool = False) -> T:
    """Run a coroutine at the CLI edge, converting cozy errors to exit codes."""
    import asyncio  # imported here: `cozy --help` should not pay for it

    from cozy.core.errors import CozyError

    try:
        return asyncio.run(_stoppable(factory))
    except CozyError as exc:
        if as_json:
            sys.stdout.write(json.dumps({"error": exc.to_dict()}) + "\n")
        sys.stderr.write(f"error: {exc}\n")
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        raise typer.Exit(130) from None
    except Stopped as exc:
        message = f"stopped by {exc.name}; an answer in progress was saved as interrupted"
        if as_json:
            error = {"type": "interrupted", "code": "stopped", "message": message}
            sys.stdout.write(json.dumps({"error": error}) + "\n")
        sys.stderr.write(message + "\n")
        raise typer.Exit(128 + exc.signum) from None


class Stopped(Exception):
    """SIGTERM / SIGHUP arrived: the command was cancelled like Ctrl-C, its work saved."""

    def __init__(self, signum: int) -> None:
        import signal

        super().__init__(signum)
        self.signum = signum
        self.name = signal.Signals(signum).name


async def _stoppable(factory: Callable[[], Awaitable[T]]) -> T:
    """Run `factory()` so that SIGTERM and SIGHUP cancel it as Ctrl-C does (asyncio.run
    handles only SIGINT): the cancelled turn saves its partial answer, the runtime
    closes in order, and the process exits 128+signal instead of dying mid-write."""
    import asyncio
    import signal

    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    got: list[int] = []

    def stop(signum: int) -> None:
        got.append(signum)
        if task is not None and len(got) == 1:
            task.cancel()

    sigs = [s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s]
    installed = []
    for sig in sigs:
        try:
            loop.add_signal_handler(sig, stop, int(sig))
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # Windows, non-main thread
            pass
    try:
        return await factory()
    except asyncio.CancelledError:
        if got:
            raise Stopped(got[0]) from None
        raise
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


@asynccontextmanager
async def runtime(engines: bool = True, **more: Any) -> AsyncIterator[Runtime]:
    from cozy.runtime import Runtime

    rt = await Runtime.open(state.settings(**more), engines=engines)
    try:
        yield rt
    finally:
        await rt.close()


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")


def console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


JSON_OPT = typer.Option("--json", help="machine-readable output")


def print_rows(
    columns: Sequence[str],
    items: Sequence[T],
    cells: Callable[[T], Sequence[str]],
    *,
    as_json: bool = False,
    data: Any = None,
    empty: str | None = None,
    fold: int | None = None,
) -> None:
    """--json: `data` (else `items`) as JSON; else `empty` when there are no items, or a
    borderless table of `cells(item)` (rich.table is imported only then) whose column
    `fold` wraps instead of being cut."""
    if as_json:
        print_json(items if data is None else data)
    elif not items and empty is not None:
        console().print(empty)
    else:
        from rich.table import Table

        table = Table(*columns, box=None)
        if fold is not None:
            table.columns[fold].overflow = "fold"
        for item in items:
            table.add_row(*cells(item))
        console().print(table)


def when(ts: float | None) -> str:
    """A local date and minute for a table cell; '-' for none."""
    import time

    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "-"


def first_line(text: str | None, width: int = 60) -> str:
    """A table cell's first line of a description (which a server may leave empty)."""
    line = next(iter((text or "").strip().splitlines()), "")
    return line if len(line) <= width else line[: width - 1] + "…"


def size(n: int) -> str:
    """Bytes for a table cell: 512 B, 1.5 KB, 3.2 MB, 1.0 GB."""
    value = float(n)
    for unit in ("B", "KB", "MB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


async def capable(rt: Runtime, kind: str, capability: type[T]) -> T:
    """The `kind` engine as `capability` (engines/capabilities.py), or a ConfigError
    naming the setting that turns it on or the provider that cannot do it."""
    from cozy.core.errors import ConfigError

    engine = await rt.engine(kind)
    if engine is None:
        raise ConfigError(
            f"the {kind} engine is off",
            hint=f"set `{kind}: {{provider: local}}` in engines.yaml (`cozy config path`)",
        )
    if not isinstance(engine, capability):
        raise ConfigError(
            f"the {kind} provider '{engine.provider_name}' cannot be managed from the CLI",
            hint=f"use `{kind}: {{provider: local}}` in engines.yaml (`cozy config path`)",
        )
    return engine


def personality_catalog() -> dict[str, Personality]:
    """Every personality (packaged + the user's), or exit with the config error."""
    from cozy.core.errors import CozyError
    from cozy.core.personalities import PersonalityCatalog

    s = state.settings()
    try:
        return PersonalityCatalog([s.packaged_profiles_dir, s.user_profiles_dir]).all()
    except CozyError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
