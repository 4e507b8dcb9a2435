"""`cozy fragments`: the `-f` texts kept once by hash (list, show)."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from cozy.cli._common import print_rows, run_async, runtime, when

fragments_app = typer.Typer(
    help="The texts attached with `cozy run -f`/`@file`/`-a` (and the chat's /file), "
    "each kept once by its sha256.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(fragments_app, name="fragments")


@fragments_app.command("list")
def list_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout")] = False,
) -> None:
    """Every kept fragment, newest first: hash, where it came from, size, and how many
    stored messages carry it (its text is kept once however many do)."""

    async def go() -> list[dict[str, Any]]:
        async with runtime(engines=False) as rt:
            rows = await rt.fragments.list()
        return [
            {
                "hash": r.hash,
                "source": r.source,
                "size": r.size,
                "messages": r.messages,
                "created_at": r.created_at,
            }
            for r in rows
        ]

    data = run_async(go, as_json=as_json)
    print_rows(
        ("hash", "source", "chars", "messages", "first kept"),
        data,
        lambda d: (
            d["hash"][:12],
            d["source"],
            f"{d['size']:,}",
            str(d["messages"]),
            when(d["created_at"]),
        ),
        as_json=as_json,
        empty='no fragments yet (attach one with `cozy run -f FILE "question"`)',
        fold=1,  # a path is the point of the row: never cut it
    )


@fragments_app.command("show")
def show_cmd(
    ref: Annotated[str, typer.Argument(help="the hash or a unique start of it")],
) -> None:
    """Print a fragment's text exactly as it was kept."""

    async def go() -> str:
        async with runtime(engines=False) as rt:
            return (await rt.fragments.get(ref)).content

    sys.stdout.write(run_async(go))
