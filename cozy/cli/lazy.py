"""The top-level commands, each imported from its module when it is used.

Importing every command module costs ~45 ms of every `cozy ...` start-up; a command
needs only its own. `cozy --help`, completion and a mistyped name load them all, so
what they print is unchanged.
"""

from __future__ import annotations

import importlib
from typing import Any

import typer
import typer.main
from typer.core import TyperGroup

# command name -> the cozy.cli module whose register(app) adds it; the order is the
# one `cozy --help` lists (commands, then groups, as typer builds them). None: defined
# in cozy.cli.app itself.
COMMANDS: dict[str, str | None] = {
    "run": "run",
    "doctor": None,
    "chat": "chat",
    "serve": "serve",
    "usage": "usage",
    "migrate": "migrate",
    "export": "transfer",
    "import": "transfer",
    "templates": "templates",
    "sessions": "sessions",
    "fragments": "fragments",
    "personalities": "info",
    "config": "info",
    "models": "info",
    "aliases": "info",
    "keys": "keys",
    "token": "keys",
    "users": "users",
    "memory": "memory",
    "profile": "profile",
    "jobs": "jobs",
    "voice": "voice",
    "knowledge": "knowledge",
    "tools": "tools",
}


class LazyCommands(TyperGroup):
    """A TyperGroup that builds a command from its module on first lookup."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loaded: set[str] = set()

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        module = COMMANDS.get(cmd_name)
        if cmd_name not in self.commands and module is not None:
            self._load(module)
        return super().get_command(ctx, cmd_name)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] not in COMMANDS:
            self.load_all()  # "Did you mean ...?" picks from every command
        return super().resolve_command(ctx, args)

    def load_all(self) -> None:
        for module in dict.fromkeys(COMMANDS.values()):
            if module is not None:
                self._load(module)

    def _load(self, module: str) -> None:
        if module in self._loaded:
            return
        self._loaded.add(module)
        # built as the root app would build them (its markup mode and exception style)
        sub = typer.Typer(rich_markup_mode=None, pretty_exceptions_enable=False)
        importlib.import_module(f"cozy.cli.{module}").register(sub)
        for name, command in typer.main.get_group(sub).commands.items():
            self.commands.setdefault(name, command)
