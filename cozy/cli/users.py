"""`cozy users list/disable/enable`: who may use `cozy serve`."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from cozy.cli._common import print_json, run_async, runtime

users_app = typer.Typer(help="Users of `cozy serve`: list, disable, enable.", no_args_is_help=True)


@users_app.command("list")
def list_users(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List users with their role and status."""

    async def go() -> None:
        from cozy.storage.users import Users

        async with runtime(engines=False) as rt:
            rows = await Users(rt.store).list()
        if as_json:
            print_json([{"id": r.id, "role": r.role, "status": r.status} for r in rows])
            return
        for r in rows:
            sys.stdout.write(f"{r.id}\t{r.role}\t{r.status}\n")

    run_async(go, as_json=as_json)


def _set(user: str, status: str) -> None:
    async def go() -> None:
        from cozy.storage.users import Users

        async with runtime(engines=False) as rt:
            row = await Users(rt.store).set_status(user, status)
        sys.stderr.write(
            f"{row.id} is now {row.status} (running servers apply it within seconds)\n"
        )

    run_async(go)


@users_app.command("disable")
def disable(user: Annotated[str, typer.Argument(help="the user id")]) -> None:
    """Refuse a user's API keys and tokens (their data is kept)."""
    _set(user, "disabled")


@users_app.command("enable")
def enable(user: Annotated[str, typer.Argument(help="the user id")]) -> None:
    """Accept a disabled user's keys and tokens again."""
    _set(user, "active")


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")
