"""`cozy users list/disable/enable/set-budget`: who may use `cozy serve`, and how much."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from cozy.cli._common import fail, print_json, run_async, runtime

users_app = typer.Typer(
    help="Users of `cozy serve`: list, disable, enable, set-budget.", no_args_is_help=True
)


@users_app.command("list")
def list_users(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List users with their role, status and stored budget (`-`: the server's)."""

    async def go() -> None:
        from cozy.storage.users import Users

        async with runtime(engines=False) as rt:
            rows = await Users(rt.store).list()
        if as_json:
            print_json(
                [
                    {
                        "id": r.id,
                        "role": r.role,
                        "status": r.status,
                        "budget": r.budget.as_dict() if r.budget else None,
                    }
                    for r in rows
                ]
            )
            return
        for r in rows:
            budget = r.budget.describe() if r.budget else "-"
            sys.stdout.write(f"{r.id}\t{r.role}\t{r.status}\t{budget}\n")

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


@users_app.command("set-budget")
def set_budget(
    user: Annotated[str, typer.Argument(help="the user id")],
    tokens_day: Annotated[
        int | None, typer.Option("--tokens-day", min=0, help="tokens per UTC day (0: none)")
    ] = None,
    tokens_month: Annotated[
        int | None, typer.Option("--tokens-month", min=0, help="tokens per calendar month")
    ] = None,
    usd_day: Annotated[
        float | None, typer.Option("--usd-day", min=0, help="spend per UTC day (needs ai.prices)")
    ] = None,
    usd_month: Annotated[
        float | None, typer.Option("--usd-month", min=0, help="spend per calendar month")
    ] = None,
    clear: Annotated[
        bool, typer.Option("--clear", help="drop this user's budget: the server's applies")
    ] = False,
) -> None:
    """Store a budget for one user; running servers apply it within their auth cache time.

    Each amount given replaces the server's (COZY_SERVER_BUDGETS) for this user, 0 means
    no such budget; amounts not given keep what was stored before."""
    values = {
        "tokens_day": tokens_day,
        "tokens_month": tokens_month,
        "usd_day": usd_day,
        "usd_month": usd_month,
    }
    if clear and any(v is not None for v in values.values()):
        fail(
            "--clear drops the whole stored budget and cannot be given with amounts; "
            f"run `cozy users set-budget {user} --clear`, then set the amounts",
            code=2,
        )

    async def go() -> None:
        from cozy.storage.users import Users

        async with runtime(engines=False) as rt:
            users = Users(rt.store)
            row = await (users.clear_budget(user) if clear else users.set_budget(user, **values))
        shown = row.budget.describe() if row.budget else "the server's budgets"
        sys.stderr.write(
            f"{row.id}: {shown} (running servers apply it within their auth cache time, "
            "COZY_SERVER_AUTH_CACHE_SECONDS)\n"
        )

    run_async(go)


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")
