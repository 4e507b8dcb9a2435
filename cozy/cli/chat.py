"""`cozy chat`: the Textual terminal app, imported lazily so `cozy --help` stays fast."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cozy.cli._common import state


def register(app: typer.Typer) -> None:
    @app.command("chat")
    def chat_cmd(
        session: Annotated[
            str | None, typer.Option("--session", "-s", help="open this session id, or 'last'")
        ] = None,
        personality: Annotated[
            str | None, typer.Option("--personality", "-p", help="personality id")
        ] = None,
        model: Annotated[
            str | None, typer.Option("--model", "-m", help="provider:model or alias")
        ] = None,
        continue_: Annotated[
            bool, typer.Option("--continue", "-c", help="open the last session (= -s last)")
        ] = False,
    ) -> None:
        """Open the terminal chat app (sessions, streaming, tools, context)."""
        if continue_ and session is None:
            session = "last"
        try:
            from cozy.tui.app import CozyApp
        except ImportError as exc:  # textual missing from a trimmed install
            typer.echo(
                f"error: the terminal app needs textual ({exc}); "
                "install it with `pip install 'cozy[tui]'`",
                err=True,
            )
            raise typer.Exit(1) from None
        settings = state.settings()
        _log_to_file(settings.data_dir)
        app = CozyApp(settings, session=session, personality=personality, model=model)
        app.run()
        if app.return_code:
            raise typer.Exit(app.return_code)


def _log_to_file(data_dir: Path) -> None:
    """While the app owns the terminal, cozy's logs go to <data dir>/logs/chat.log."""
    import logging

    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(logs / "chat.log", encoding="utf-8")
    root = logging.getLogger("cozy")
    if root.handlers:
        handler.setFormatter(root.handlers[0].formatter)
    root.handlers = [handler]
