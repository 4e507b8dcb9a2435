"""Running `/` commands: each name goes to the part of the app that owns it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from cozy.tui.commands import COMMANDS, Command, complete

if TYPE_CHECKING:
    from cozy.tui.host import Host

Handler = Callable[[str], Awaitable[Any] | Any]


class SlashCommands:
    """A table from command name to handler(arg); the app fills it from its parts."""

    def __init__(self, host: Host, handlers: dict[str, Handler]) -> None:
        self.host = host
        self.handlers = handlers
        missing = set(COMMANDS) - set(handlers)
        assert not missing, f"commands without a handler: {sorted(missing)}"

    async def run(self, command: Command) -> None:
        handler = self.handlers.get(command.name)
        if handler is None:
            matches = complete(command.name)
            hint = f"did you mean {', '.join(matches)}?" if matches else "type /help for the list"
            self.host.notify(
                f"unknown command {command.name}: {hint} "
                "(start with // to send a line beginning with /)",
                severity="warning",
            )
            return
        result = handler(command.arg)
        if isinstance(result, Awaitable):
            await result
