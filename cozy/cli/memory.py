"""`cozy memory`: list, search, add, edit, forget, restore, history, export."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cozy.cli._common import (
    JSON_OPT,
    capable,
    console,
    print_json,
    run_async,
    runtime,
    state,
    when,
)

if TYPE_CHECKING:
    from cozy.engines.capabilities import ManagesMemories
    from cozy.runtime import Runtime

memory_app = typer.Typer(help="What cozy remembers about you: view, search, edit, forget.")


async def _engine(rt: Runtime) -> ManagesMemories:
    from cozy.engines.capabilities import ManagesMemories

    return await capable(rt, "memory", ManagesMemories)


def _print_rows(rows: Sequence[Any]) -> None:
    from rich.table import Table

    table = Table(show_header=True, header_style="bold")
    for col in ("id", "kind", "status", "updated", "text"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r.id, r.kind, r.status, when(r.updated_at), r.text)
    console().print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(memory_app, name="memory")


@memory_app.command("list")
def list_cmd(
    all_: Annotated[bool, typer.Option("--all", help="include forgotten and obsolete")] = False,
    turns: Annotated[bool, typer.Option("--turns", help="also the raw conversation turns")] = False,
    as_json: Annotated[bool, JSON_OPT] = False,
) -> None:
    """List the facts cozy remembers."""

    async def go() -> None:
        async with runtime() as rt:
            mem = await _engine(rt)
            kinds = ("fact", "turn") if turns else ("fact",)
            rows = await mem.list_memories(state.settings().user, kinds=kinds, include_removed=all_)
        if as_json:
            print_json([r.to_dict() for r in rows])
        elif not rows:
            console().print('nothing remembered yet — try `cozy memory add "I like green tea"`')
        else:
            _print_rows(rows)

    run_async(go, as_json=as_json)


@memory_app.command("search")
def search_cmd(
    query: Annotated[str, typer.Argument(help="what to look for")],
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=100)] = 10,
    min_similarity: Annotated[
        float | None,
        typer.Option(
            "--min-similarity",
            min=0.0,
            max=1.0,
            help="show a memory only if it shares a word with the query or its meaning is "
            "at least this close (cosine; default memory.search_min_similarity, 0.25; 0: all)",
        ),
    ] = None,
    as_json: Annotated[bool, JSON_OPT] = False,
) -> None:
    """Hybrid search (keywords + meaning) over memories and past turns."""

    async def go() -> None:
        from cozy.engines.degraded import noting

        async with runtime() as rt:
            mem = await _engine(rt)
            # no answer is waiting on this search: give the embedder time to load
            with noting() as notes:
                hits = await mem.find_memories(
                    query, user_id=state.settings().user, limit=limit, min_similarity=min_similarity
                )
        note = notes[0] if notes else None
        if as_json:
            print_json(
                {
                    "results": [
                        {
                            "id": h.id,
                            "text": h.text,
                            "score": h.score,
                            "similarity": h.metadata.get("similarity"),
                            "kind": h.metadata.get("kind"),
                            "source_message_ids": h.source_message_ids,
                        }
                        for h in hits
                    ],
                    "degraded": note,
                }
            )
            return
        out = console()
        if note:
            console(stderr=True).print(f"note: {note}")
        if not hits:
            out.print("no matching memories (`--min-similarity 0` lists the closest anyway)")
        for h in hits:
            sim = h.metadata.get("similarity")
            close = f", similarity {sim:.2f}" if sim is not None else ""
            out.print(f"[bold]{h.id}[/] ({h.metadata.get('kind')}{close})  {h.text}")

    run_async(go, as_json=as_json)


@memory_app.command("add")
def add_cmd(
    text: Annotated[str, typer.Argument(help="the fact to remember")],
    as_json: Annotated[bool, JSON_OPT] = False,
) -> None:
    """Remember a fact (a duplicate of an existing one is not stored twice)."""

    async def go() -> None:
        async with runtime() as rt:
            mem = await _engine(rt)
            mid, created = await mem.remember(state.settings().user, text)
        if as_json:
            print_json({"id": mid, "created": created})
        else:
            console().print(f"{'remembered' if created else 'already remembered'}: {mid}")

    run_async(go, as_json=as_json)


@memory_app.command("edit")
def edit_cmd(
    memory_id: Annotated[str, typer.Argument(help="memory id (see `cozy memory list`)")],
    text: Annotated[str, typer.Argument(help="the new text")],
    as_json: Annotated[bool, JSON_OPT] = False,
) -> None:
    """Change a memory; the old text stays in its history."""

    async def go() -> None:
        async with runtime() as rt:
            row = await (await _engine(rt)).edit_memory(state.settings().user, memory_id, text)
        print_json(row.to_dict()) if as_json else console().print(f"updated {row.id}: {row.text}")

    run_async(go, as_json=as_json)


def _status_cmd(memory_id: str, action: str, as_json: bool) -> None:
    async def go() -> None:
        async with runtime() as rt:
            mem = await _engine(rt)
            fn = mem.forget if action == "forget" else mem.restore
            row = await fn(state.settings().user, memory_id)
        if as_json:
            print_json(row.to_dict())
        elif action == "forget":
            undo = f"undo: `cozy memory restore {row.id}`" if mem.restorable else "for good"
            console().print(f"forgotten {row.id} ({undo})", soft_wrap=True)
        else:
            console().print(f"restored {row.id}: {row.text}")

    run_async(go, as_json=as_json)


@memory_app.command("forget")
def forget_cmd(
    memory_id: Annotated[str, typer.Argument(help="memory id")],
    as_json: Annotated[bool, JSON_OPT] = False,
) -> None:
    """Forget a memory (soft delete: `cozy memory restore ID` brings it back)."""
    _status_cmd(memory_id, "forget", as_json)


@memory_app.command("restore")
def restore_cmd(
    memory_id: Annotated[str, typer.Argument(help="memory id")],
    as_json: Annotated[bool, JSON_OPT] = False,
) -> None:
    """Bring back a forgotten or obsolete memory."""
    _status_cmd(memory_id, "restore", as_json)


@memory_app.command("history")
def history_cmd(
    memory_id: Annotated[str, typer.Argument(help="memory id")],
    as_json: Annotated[bool, JSON_OPT] = False,
) -> None:
    """Every version of a memory, with the reason for each change."""

    async def go() -> None:
        async with runtime() as rt:
            rows = await (await _engine(rt)).history(state.settings().user, memory_id)
        if as_json:
            print_json(rows)
            return
        for h in rows:
            change = h["new_text"] if h["action"] in ("add", "update", "edit") else h["old_text"]
            console().print(
                f"{when(h['created_at'])}  {h['action']:<8} {change}  [dim]({h['reason']})[/]"
            )

    run_async(go, as_json=as_json)


@memory_app.command("export")
def export_cmd(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write to a file")] = None,
) -> None:
    """Everything remembered about you (with history), as JSON."""

    async def go() -> None:
        async with runtime() as rt:
            data = await (await _engine(rt)).export(state.settings().user)
        if output is None:
            print_json(data)
        else:
            output.write_text(json.dumps(data, indent=2, default=str, ensure_ascii=False))
            console(stderr=True).print(f"wrote {data['count']} memories to {output}")

    run_async(go)
