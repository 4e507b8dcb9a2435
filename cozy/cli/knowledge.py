"""`cozy knowledge`: add and embed (knowledge_add.py), search, list, stats, rm,
collections. The commands talk to the knowledge engine built by the runtime; no SQL here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cozy.cli._common import (
    JSON_OPT,
    capable,
    console,
    print_json,
    print_rows,
    run_async,
    runtime,
    size,
    state,
)
from cozy.cli.knowledge_add import add_cmd, embed_cmd

if TYPE_CHECKING:
    from cozy.engines.capabilities import ManagesDocuments
    from cozy.runtime import Runtime

knowledge_app = typer.Typer(
    help="Index your notes, docs and code, and search them (answers cite them).",
    no_args_is_help=True,
)
knowledge_app.command("add")(add_cmd)
knowledge_app.command("embed")(embed_cmd)

CollectionOpt = Annotated[str | None, typer.Option("--collection", "-c")]
JsonOpt = Annotated[bool, JSON_OPT]
NOTHING_YET = "nothing indexed yet — `cozy knowledge add PATH --collection NAME`"


def register(app: typer.Typer) -> None:
    app.add_typer(knowledge_app, name="knowledge")


async def _engine(rt: Runtime) -> ManagesDocuments:
    from cozy.engines.capabilities import ManagesDocuments

    return await capable(rt, "knowledge", ManagesDocuments)


@knowledge_app.command("search")
def search_cmd(
    query: Annotated[str, typer.Argument(help="what to look for")],
    collection: Annotated[
        list[str] | None, typer.Option("--collection", "-c", help="repeat for several")
    ] = None,
    path: Annotated[str | None, typer.Option("--path", help="only files under this path")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=100)] = 5,
    mode: Annotated[str, typer.Option("--mode", help="hybrid, bm25 or vector")] = "hybrid",
    as_json: JsonOpt = False,
) -> None:
    """Search indexed documents; every result carries its citation."""

    prefix = str(Path(path).expanduser().resolve()) if path else None

    async def go() -> list[Any]:
        async with runtime(engines=False) as rt:
            engine = await _engine(rt)
            return await engine.search(
                query,
                user_id=state.settings().user,
                collections=collection or None,
                prefix=prefix,
                limit=limit,
                mode=mode,
            )

    hits = run_async(go, as_json=as_json)
    if as_json:
        print_json(
            [
                {
                    "id": h.id,
                    "score": h.score,
                    "citation": h.citation,
                    "text": h.text,
                    **h.metadata,
                }
                for h in hits
            ]
        )
        return
    out = console()
    if not hits:
        out.print("no matches — add documents with `cozy knowledge add PATH --collection NAME`")
        return
    for i, h in enumerate(hits, 1):
        out.print(f"[bold][{i}][/] [cyan]{h.citation}[/]  [dim]{h.score:.4f}[/]", markup=True)
        text = h.text if len(h.text) <= 400 else h.text[:400] + "…"
        out.print(text, markup=False)
        out.print()
    notes = hits[0].metadata.get("notes") or []
    for note in notes:
        console(stderr=True).print(f"[yellow]note:[/] {note}")


@knowledge_app.command("list")
def list_cmd(
    collection: CollectionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List indexed documents."""

    async def go() -> list[Any]:
        async with runtime(engines=False) as rt:
            engine = await _engine(rt)
            return await engine.list_documents(user_id=state.settings().user, collection=collection)

    docs = run_async(go, as_json=as_json)
    print_rows(
        ("id", "collection", "kind", "chunks", "size", "path"),
        docs,
        lambda d: (d.id, d.collection, d.kind, str(d.chunk_count), size(d.size_bytes), d.path),
        as_json=as_json,
        data=[d.to_dict() for d in docs],
        empty=NOTHING_YET,
    )


async def _stats() -> dict[str, Any]:
    async with runtime(engines=False) as rt:
        engine = await _engine(rt)
        return await engine.stats(user_id=state.settings().user)


@knowledge_app.command("stats")
def stats_cmd(as_json: JsonOpt = False) -> None:
    """Documents, chunks, bytes and vectors per collection."""
    data = run_async(_stats, as_json=as_json)

    def cells(name: str) -> tuple[str, ...]:
        s, pending = data[name], data[name].get("pending_vectors")
        vectors = str(sum(s["embedded"].values()))
        shown = "-" if pending is None else str(pending)
        return name, str(s["documents"]), str(s["chunks"]), vectors, shown, size(s["bytes"])

    columns = ("collection", "documents", "chunks", "with vectors", "pending", "size")
    print_rows(columns, list(data), cells, as_json=as_json, data=data, empty=NOTHING_YET)
    if not as_json and any(s.get("pending_vectors") for s in data.values()):
        console().print(
            "pending: chunks searchable by keywords, their vectors still being computed "
            "(`cozy knowledge embed` does it now)"
        )


@knowledge_app.command("collections")
def collections_cmd(as_json: JsonOpt = False) -> None:
    """Collection names (use them in a personality's `context.collections`)."""
    data = run_async(_stats, as_json=as_json)
    if as_json:
        print_json(sorted(data))
        return
    for name in sorted(data):
        typer.echo(name)


@knowledge_app.command("rm")
def rm_cmd(
    ref: Annotated[str, typer.Argument(help="document id, file path, or directory path")],
    collection: CollectionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove documents from the index (the files themselves are not touched)."""
    from cozy.core.errors import NotFoundError

    async def go() -> list[Any]:
        async with runtime(engines=False) as rt:
            engine = await _engine(rt)
            docs = await engine.remove(ref, user_id=state.settings().user, collection=collection)
            if not docs:
                raise NotFoundError(
                    f"no indexed document matches '{ref}'",
                    hint="see `cozy knowledge list` for ids and paths",
                )
            return docs

    docs = run_async(go, as_json=as_json)
    if as_json:
        print_json({"removed": [d.to_dict() for d in docs]})
        return
    for d in docs:
        typer.echo(f"removed {d.path} ({d.collection})", err=True)
