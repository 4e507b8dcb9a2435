"""The `cozy` command. Command modules are light; heavy imports live in the commands."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from cozy import __version__
from cozy.cli._common import state
from cozy.cli.lazy import LazyCommands

app = typer.Typer(
    cls=LazyCommands,  # a command's module is imported when that command runs
    name="cozy",
    help="cozy — a local assistant runtime: chat, voice, an OpenAI-compatible server, scripts.",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=True,  # --install-completion / --show-completion: bash, zsh, fish
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"cozy {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    config: Annotated[
        Path | None, typer.Option("--config", help="engines.yaml to use (env COZY_CONFIG)")
    ] = None,
    user: Annotated[str | None, typer.Option("--user", help="act as this user id")] = None,
    log_level: Annotated[
        str | None, typer.Option("--log-level", help="DEBUG, INFO, WARNING (env COZY_LOG_LEVEL)")
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print version")
    ] = False,
) -> None:
    state.overrides = {"config": config, "user": user, "log_level": log_level}


@app.command("doctor")
def doctor_cmd(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Check config, storage, the model, extras and audio; name the fix for each failure."""
    # imported on use: its checks pull in asyncio and the engine interfaces (~1/3 of
    # `cozy --help`'s import time when imported with the other commands)
    from cozy.cli.doctor import doctor_cmd as run_doctor

    run_doctor(as_json)


def _is_devnull() -> bool:
    try:
        out, null = os.fstat(1), os.stat(os.devnull)
    except OSError:
        return False
    return (out.st_dev, out.st_ino) == (null.st_dev, null.st_ino)


def main() -> None:
    # pydantic scans every installed package's entry points for its plugins on the first
    # model (~5% of a one-shot run); cozy uses none. PYDANTIC_DISABLE_PLUGINS="" keeps them.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    was_devnull = _is_devnull()
    try:
        app(prog_name="cozy")  # also under `python -m cozy`: completion keys on it
    except BrokenPipeError:
        # `cozy knowledge search ... | head -1`: the reader has what it wanted. Python's
        # documented recipe: point stdout at devnull so the exit flush cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise SystemExit(0) from None
    except SystemExit as exc:
        # typer and rich turn a broken pipe into exit 1 (rich after pointing stdout at
        # devnull, typer after wrapping it); a reader that stopped early (`| head`) is
        # not a failure of the command
        broken = type(sys.stdout).__name__ == "PacifyFlushWrapper" or (
            not was_devnull and _is_devnull()
        )
        if exc.code == 1 and broken:
            raise SystemExit(0) from None
        raise
    finally:
        import gc

        gc.freeze()  # exiting: the final collection need not walk every object again


if __name__ == "__main__":  # pragma: no cover
    main()
