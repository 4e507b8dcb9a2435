"""`cozy keys create/list/revoke` and `cozy token issue`: credentials for `cozy serve`."""

from __future__ import annotations

import re
import sys
from typing import Annotated

import typer

from cozy.cli._common import fail, print_json, run_async, runtime

keys_app = typer.Typer(
    help="API keys: create/list/revoke for `cozy serve` (stored hashed); "
    "set/unset/providers for the model providers cozy calls (never printed).",
    no_args_is_help=True,
)
token_app = typer.Typer(help="JWT bearer tokens for `cozy serve`.", no_args_is_help=True)

_TTL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_ttl(text: str) -> float:
    m = _TTL.match(text.lower())
    if not m or float(m.group(1)) <= 0:
        raise typer.BadParameter(f"'{text}' is not a duration: use e.g. 30m, 1h, 7d")
    return float(m.group(1)) * _UNITS[m.group(2)]


def _role(role: str) -> str:
    if role not in ("user", "admin"):
        fail(f"unknown role '{role}': use --role user or --role admin", code=2)
    return role


@keys_app.command("create")
def create(
    user: Annotated[str, typer.Option("--user", help="the user the key acts as")],
    role: Annotated[str, typer.Option("--role", help="user or admin")] = "user",
    name: Annotated[str | None, typer.Option("--name", help="a label for the key")] = None,
    ttl: Annotated[str | None, typer.Option("--ttl", help="expire after e.g. 30d")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Create an API key; it is printed once and stored hashed."""
    import time

    _role(role)
    expires = time.time() + parse_ttl(ttl) if ttl else None

    async def go() -> None:
        from cozy.storage.api_keys import ApiKeys

        async with runtime(engines=False) as rt:
            key, row = await ApiKeys(rt.store).create(
                user, role=role, name=name, expires_at=expires
            )
        if as_json:
            print_json({"key": key, "id": row.id, "user": row.user_id, "role": row.role})
            return
        sys.stdout.write(key + "\n")
        sys.stderr.write(
            f"created {row.id} for {row.user_id} ({row.role}); this key is shown only once\n"
        )

    run_async(go, as_json=as_json)


@keys_app.command("list")
def list_keys(
    user: Annotated[str | None, typer.Option("--user", help="only this user's keys")] = None,
    all_: Annotated[bool, typer.Option("--all", help="include revoked keys")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List API keys (prefixes only; keys are never shown again)."""

    async def go() -> None:
        from cozy.storage.api_keys import ApiKeys

        async with runtime(engines=False) as rt:
            rows = await ApiKeys(rt.store).list(user, all_=all_)
        items = [
            {
                "id": r.id,
                "prefix": r.prefix + "…",
                "user": r.user_id,
                "role": r.role,
                "name": r.name,
                "active": r.active,
                "created_at": r.created_at,
                "expires_at": r.expires_at,
                "revoked_at": r.revoked_at,
            }
            for r in rows
        ]
        if as_json:
            print_json(items)
            return
        if not items:
            sys.stderr.write("no keys yet: create one with `cozy keys create --user NAME`\n")
        for i in items:
            state = "active" if i["active"] else "revoked/expired"
            sys.stdout.write(f"{i['id']}  {i['prefix']}  {i['user']}  {i['role']}  {state}\n")

    run_async(go, as_json=as_json)


@keys_app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="key id (or prefix) from `keys list`")],
) -> None:
    """Revoke an API key (running servers stop accepting it within seconds)."""

    async def go() -> None:
        from cozy.storage.api_keys import ApiKeys

        async with runtime(engines=False) as rt:
            row = await ApiKeys(rt.store).revoke(key_id)
        sys.stderr.write(f"revoked {row.id} ({row.user_id})\n")

    run_async(go)


@token_app.command("issue")
def issue(
    user: Annotated[str, typer.Option("--user", help="the token's subject (user id)")],
    ttl: Annotated[str, typer.Option("--ttl", help="lifetime, e.g. 30m, 1h, 7d")] = "1h",
    role: Annotated[str, typer.Option("--role", help="user or admin")] = "user",
) -> None:
    """Issue a JWT (HS256 with the server's secret, or RS256 with the private key)."""
    from cozy.cli._common import state
    from cozy.core.errors import CozyError
    from cozy.server.auth import issue_token
    from cozy.server.config import ServerSettings

    _role(role)
    seconds = parse_ttl(ttl)
    if not user.strip() or len(user) > 64:
        fail("--user must be 1 to 64 characters", code=2)
    try:
        token = issue_token(
            state.settings(), ServerSettings(), user, role=role, ttl_seconds=seconds
        )
    except CozyError as exc:
        fail(str(exc), code=exc.exit_code)

    async def known() -> None:  # the server accepts tokens of known, active users only
        from cozy.storage.users import Users

        async with runtime(engines=False) as rt:
            await rt.store.ensure_user(user, role=role)
            row = await Users(rt.store).get(user)
        if row is not None and not row.active:
            sys.stderr.write(f"warning: {user} is disabled: `cozy users enable {user}`\n")

    run_async(known)
    sys.stdout.write(token + "\n")


def register(app: typer.Typer) -> None:
    from cozy.cli import provider_keys

    provider_keys.register(keys_app)
    app.add_typer(keys_app, name="keys")
    app.add_typer(token_app, name="token")
