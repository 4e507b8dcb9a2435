"""`cozy knowledge`: add, embed, search, list, stats, rm, collections.

The commands talk to the knowledge engine built by the runtime; no SQL here.
`add` shows a progress bar and one status line per file on stderr, and exits 1
when any file failed (the others are still indexed). The documents are
keyword-searchable when `add` returns; their vectors are computed by a background
`cozy knowledge embed` it starts (detached: closing the terminal does not stop it,
and a durable job finishes the rest in any later cozy process), or before it
returns with `--wait`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cozy.cli._common import console, print_json, run_async, runtime, state

if TYPE_CHECKING:
    from rich.progress import Progress

    from cozy.engines.capabilities import ManagesDocuments
    from cozy.engines.knowledge.ingest import IngestReport
    from cozy.runtime import Runtime

knowledge_app = typer.Typer(
    help="Index your notes, docs and code, and search them (answers cite them).",
    no_args_is_help=True,
)

STATUS_STYLE = {
    "added": "green",
    "updated": "cyan",
    "renamed": "cyan",
    "unchanged": "dim",
    "removed": "yellow",
    "skipped": "yellow",
    "failed": "red",
}

CollectionOpt = Annotated[str, typer.Option("--collection", "-c", help="collection name")]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def register(app: typer.Typer) -> None:
    app.add_typer(knowledge_app, name="knowledge")


async def _engine(rt: Runtime) -> ManagesDocuments:
    from cozy.cli._common import cannot_manage, engine_on
    from cozy.engines.capabilities import ManagesDocuments

    engine = await engine_on(rt, "knowledge")
    if not isinstance(engine, ManagesDocuments):
        raise cannot_manage("knowledge", engine)
    return engine


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


@knowledge_app.command("add")
def add_cmd(
    paths: Annotated[list[Path], typer.Argument(help="files or directories")],
    collection: CollectionOpt = "default",
    no_embed: Annotated[
        bool, typer.Option("--no-embed", help="keyword index only (fast); vectors later")
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="compute the vectors before returning (scripts)")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Index files and directories; re-running only re-indexes what changed.

    Keyword search works as soon as this returns; vectors follow in the background
    (`cozy knowledge stats` shows how many are pending) unless --wait."""
    from cozy.cli.progress import progress_bar

    err = console(stderr=True)

    def bar() -> Progress:
        # imported here: only a terminal shows the bar (see cozy/cli/progress.py)
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        return Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[bytes]}"),
            TimeRemainingColumn(),
            console=err,
            transient=True,
        )

    progress = progress_bar(err, bar, disable=as_json)
    task = progress.add_task("indexing", total=None, bytes="")
    sizes = {"done": 0, "total": 0}
    vectors_task: list[Any] = []

    def on_vectors(done: int, total: int) -> None:
        if not vectors_task:
            vectors_task.append(progress.add_task("embedding", total=total, bytes="chunks"))
        progress.update(vectors_task[0], completed=done)

    def on_plan(files: int, total_bytes: int) -> None:
        sizes["total"] = total_bytes
        progress.update(task, total=files, bytes=f"0 / {_size(total_bytes)}")

    def on_result(r: Any) -> None:
        sizes["done"] += r.size
        shown = f"{_size(sizes['done'])} / {_size(sizes['total'])}"
        progress.update(task, advance=1, bytes=shown)
        if as_json:
            return
        style = STATUS_STYLE.get(r.status, "")
        extra = f" ({r.chunks} chunks)" if r.status in ("added", "updated") else ""
        detail = f" — {r.detail}" if r.detail else ""
        line = f"[{style}]{r.status:>9}[/] {r.path}{extra}{detail}"
        progress.console.print(line, markup=True, soft_wrap=True)

    async def go() -> IngestReport:
        async with runtime(engines=False) as rt:
            engine = await _engine(rt)
            with progress:
                report: IngestReport = await engine.add_paths(
                    paths,
                    user_id=state.settings().user,
                    collection=collection,
                    embed=not no_embed,
                    wait=wait,
                    on_plan=on_plan,
                    on_result=on_result,
                    on_vectors=on_vectors,
                )
                return report

    report = run_async(go, as_json=as_json)
    if report.embed_job:
        _embed_in_background(collection)
    if as_json:
        print_json(report.to_dict())
    else:
        counts = report.counts()
        summary = ", ".join(f"{n} {status}" for status, n in counts.items()) or "nothing to do"
        err.print(f"collection '{collection}': {summary}")
        if report.pending_vectors:
            err.print(
                f"keyword search works now; {report.pending_vectors} chunks are being embedded "
                "in the background (`cozy knowledge stats` shows progress)"
            )
        for note in report.notes:
            err.print(f"[yellow]note:[/] {note}")
    if report.failed:
        raise typer.Exit(1)


def _embed_in_background(collection: str) -> None:
    """Start `cozy knowledge embed` detached (its own session: it outlives this command
    and the terminal). Should it die, the durable job finishes in any later cozy process."""
    import os
    import subprocess
    import sys

    log = state.settings().data_dir / "logs" / "knowledge-embed.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        subprocess.Popen(
            [sys.executable, "-m", "cozy", "knowledge", "embed", "-c", collection, "--quiet"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
            env=os.environ.copy(),
        )


@knowledge_app.command("embed")
def embed_cmd(
    collection: Annotated[
        str | None, typer.Option("--collection", "-c", help="only this collection")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress output")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Compute the vectors still missing (what `add` leaves to the background)."""
    from cozy.cli.progress import progress_bar

    err = console(stderr=True)

    def bar() -> Progress:
        # imported here: only a terminal shows the bar (see cozy/cli/progress.py)
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        return Progress(
            "embedding",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=True,
        )

    progress = progress_bar(err, bar, disable=quiet or as_json)
    task = progress.add_task("embedding", total=None)

    async def go() -> dict[str, int]:
        async with runtime(engines=False) as rt:
            from cozy.cli._common import cannot_manage, engine_on
            from cozy.engines.capabilities import EmbedsLater

            engine = await engine_on(rt, "knowledge")
            if not isinstance(engine, EmbedsLater):
                raise cannot_manage("knowledge", engine)
            with progress:
                left = await engine.embed_pending(
                    state.settings().user,
                    collection,
                    on_vectors=lambda done, total: progress.update(
                        task, completed=done, total=total
                    ),
                )
            # the queued knowledge.embed jobs have nothing left to do: run them to done
            await rt.drain_jobs(kinds=["knowledge.embed"])
            done = progress.tasks[0].completed if progress.tasks else 0
            return {"embedded": int(done), "pending": left}

    result = run_async(go, as_json=as_json)
    if as_json:
        print_json(result)
    elif not quiet:
        console(stderr=True).print(f"{result['embedded']} chunks embedded")


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
    collection: Annotated[str | None, typer.Option("--collection", "-c")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List indexed documents."""

    async def go() -> list[Any]:
        async with runtime(engines=False) as rt:
            engine = await _engine(rt)
            return await engine.list_documents(user_id=state.settings().user, collection=collection)

    docs = run_async(go, as_json=as_json)
    if as_json:
        print_json([d.to_dict() for d in docs])
        return
    if not docs:
        console().print("nothing indexed yet — `cozy knowledge add PATH --collection NAME`")
        return
    from rich.table import Table

    table = Table("id", "collection", "kind", "chunks", "size", "path", box=None)
    for d in docs:
        table.add_row(d.id, d.collection, d.kind, str(d.chunk_count), _size(d.size_bytes), d.path)
    console().print(table)


async def _stats() -> dict[str, Any]:
    async with runtime(engines=False) as rt:
        engine = await _engine(rt)
        return await engine.stats(user_id=state.settings().user)


@knowledge_app.command("stats")
def stats_cmd(as_json: JsonOpt = False) -> None:
    """Documents, chunks, bytes and vectors per collection."""
    data = run_async(_stats, as_json=as_json)
    if as_json:
        print_json(data)
        return
    if not data:
        console().print("nothing indexed yet — `cozy knowledge add PATH --collection NAME`")
        return
    from rich.table import Table

    table = Table("collection", "documents", "chunks", "with vectors", "pending", "size", box=None)
    for name, s in data.items():
        vectors = sum(s["embedded"].values())
        pending = s.get("pending_vectors")
        table.add_row(
            name,
            str(s["documents"]),
            str(s["chunks"]),
            str(vectors),
            "-" if pending is None else str(pending),
            _size(s["bytes"]),
        )
    console().print(table)
    if any(s.get("pending_vectors") for s in data.values()):
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
    collection: Annotated[str | None, typer.Option("--collection", "-c")] = None,
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
