"""`cozy tools prompts / resources / read`, and the `--prompt` / `--resource` pieces of
`cozy run`: MCP prompts and resources from the configured servers."""

from __future__ import annotations

import contextlib
import sys
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from cozy.cli._common import console, first_line, print_json, print_rows, run_async, runtime
from cozy.core.types import LOG_LEVELS as LEVELS

if TYPE_CHECKING:
    from cozy.runtime import Runtime

T = TypeVar("T")


def _engine(rt: Runtime, need: type[T]) -> T:
    from cozy.core.mcp_input import engine_for

    return engine_for(rt.orchestrator.tools.engine, need)


def _warn(problems: list[str]) -> None:
    err = console(stderr=True)
    for problem in problems:
        err.print(f"warning: {problem}", markup=False)


def prompts_cmd(
    server: Annotated[str | None, typer.Option("--server", help="only this server")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout")] = False,
) -> None:
    """MCP prompts: use one with `cozy run --prompt SERVER.NAME key=value ...`."""

    async def go() -> None:
        from cozy.engines.capabilities import ServesPrompts

        async with runtime() as rt:
            prompts, problems = await _engine(rt, ServesPrompts).list_prompts(server)
        _warn(problems)
        rows = [
            {
                "name": p.qualified,
                "description": p.description,
                "arguments": p.arguments,
            }
            for p in prompts
        ]

        def cells(r: dict[str, Any]) -> tuple[str, ...]:
            args = ", ".join(f"{a['name']}{'*' if a['required'] else ''}" for a in r["arguments"])
            return r["name"], args or "-", first_line(r["description"])

        columns = ("prompt", "arguments (* = required)", "description")
        print_rows(columns, rows, cells, as_json=as_json, empty="no prompts")

    run_async(go, as_json=as_json)


def resources_cmd(
    server: Annotated[str | None, typer.Option("--server", help="only this server")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout")] = False,
) -> None:
    """MCP resources: attach one with `cozy run --resource SERVER:URI`."""

    async def go() -> None:
        from cozy.engines.capabilities import ServesResources

        async with runtime() as rt:
            found, problems = await _engine(rt, ServesResources).list_resources(server)
        _warn(problems)
        rows = [
            {
                "ref": f"{r.server}:{r.uri}",
                "name": r.name,
                "mime_type": r.mime_type,
                "description": r.description,
            }
            for r in found
        ]
        print_rows(
            ("resource", "name", "type"),
            rows,
            lambda r: (r["ref"], r["name"], r["mime_type"] or "-"),
            as_json=as_json,
            empty="no resources",
        )

    run_async(go, as_json=as_json)


def read_cmd(
    ref: Annotated[str, typer.Argument(help="SERVER:URI, as `cozy tools resources` lists")],
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout")] = False,
) -> None:
    """Print one MCP resource."""

    async def go() -> None:
        async with runtime() as rt:
            res = await read_ref(rt, ref)
        if as_json:
            print_json(
                {
                    "ref": ref,
                    "mime_type": res.mime_type,
                    "text": res.text,
                    "truncated": res.truncated,
                }
            )
        else:
            sys.stdout.write(res.text + ("" if res.text.endswith("\n") else "\n"))

    run_async(go, as_json=as_json)


LOG_LEVELS = ", ".join(LEVELS)


def logs_cmd(
    server: Annotated[str | None, typer.Argument(help="only this server")] = None,
    limit: Annotated[int, typer.Option("-n", "--limit", help="newest N messages")] = 50,
    level: Annotated[str, typer.Option("--level", help=f"at least: {LOG_LEVELS}")] = "debug",
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout")] = False,
) -> None:
    """What MCP servers logged to cozy (notifications/message), newest last."""

    async def go() -> None:
        from datetime import datetime

        from cozy.core.errors import ConfigError
        from cozy.engines.capabilities import KeepsServerLogs

        if level not in LOG_LEVELS.split(", "):
            raise ConfigError(f"unknown level {level!r}", hint=f"use one of: {LOG_LEVELS}")
        async with runtime() as rt:
            rows = _engine(rt, KeepsServerLogs).server_logs(server, limit=limit, level=level)
        if as_json:
            print_json(rows)
            return
        if not rows:
            where = f"'{server}'" if server else "any server"
            console(stderr=True).print(
                f"no log messages from {where} yet (servers log while cozy runs them; "
                "`log_level` in engines.yaml sets how much they send)",
                markup=False,
            )
            return
        out = console()
        for r in rows:
            when = datetime.fromtimestamp(float(r["at"])).strftime("%Y-%m-%d %H:%M:%S")
            logger = f" {r['logger']}" if r.get("logger") else ""
            out.print(f"{when} {r['server']}{logger} {r['level']}: {r['text']}", markup=False)

    run_async(go, as_json=as_json)


def login_cmd(
    server: Annotated[str, typer.Argument(help="an MCP server with `oauth: true`")],
    no_browser: Annotated[
        bool, typer.Option("--no-browser", help="print the URL only; open it yourself")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout")] = False,
) -> None:
    """Log in to an MCP server over OAuth: open the printed URL, allow cozy, done
    (tokens are kept per server and refreshed; log in again when they run out)."""

    async def go() -> None:
        from cozy.engines.capabilities import LogsInToServers

        async def show(url: str) -> None:
            # plain write: a console would wrap the URL at the terminal's width
            sys.stderr.write(f"open this URL to let cozy use '{server}':\n{url}\n")
            sys.stderr.flush()
            if not no_browser:
                import webbrowser

                # best effort: a terminal without a browser still has the printed URL
                with contextlib.suppress(Exception):
                    webbrowser.open(url)

        async with runtime() as rt:
            done = await _engine(rt, LogsInToServers).login(server, show)
        if as_json:
            print_json(done)
        elif done["logged_in"]:
            console().print(
                f"logged in to {server} ({done['tools']} tools); tokens in {done['tokens']}",
                markup=False,
            )
        else:
            console().print(f"{server} did not ask for a login ({done['tools']} tools)")

    run_async(go, as_json=as_json)


async def read_ref(rt: Runtime, ref: str) -> Any:
    from cozy.core.mcp_input import read_ref as read

    return await read(rt.orchestrator.tools.engine, ref)


def register_mcp(app: typer.Typer) -> None:
    app.command("prompts")(prompts_cmd)
    app.command("resources")(resources_cmd)
    app.command("read")(read_cmd)
    app.command("logs")(logs_cmd)
    app.command("login")(login_cmd)
