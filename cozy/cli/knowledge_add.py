"""`cozy knowledge add` and `embed`: indexing files with progress on stderr.

`add` prints one status line per file and exits 1 when any file failed (the others
are still indexed). The documents are keyword-searchable when it returns; their
vectors are computed by a background `cozy knowledge embed` it starts (detached:
closing the terminal does not stop it, and a durable job finishes the rest in any
later cozy process), or before it returns with `--wait`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cozy.cli._common import JSON_OPT, capable, console, print_json, run_async, runtime, size, state

if TYPE_CHECKING:
    from rich.progress import Progress

    from cozy.cli.progress import ProgressLike
    from cozy.engines.knowledge.ingest import IngestReport

STATUS_STYLE = {
    "added": "green",
    "updated": "cyan",
    "renamed": "cyan",
    "unchanged": "dim",
    "removed": "yellow",
    "skipped": "yellow",
    "failed": "red",
}


def _progress(err: Any, label: str, *, sizes: bool, disable: bool) -> ProgressLike:
    from cozy.cli.progress import progress_bar

    def bar() -> Progress:
        # imported here: only a terminal shows the bar (see cozy/cli/progress.py)
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        shown = [TextColumn("{task.fields[bytes]}")] if sizes else []
        columns = [TextColumn(label), BarColumn(), MofNCompleteColumn(), *shown]
        return Progress(*columns, TimeRemainingColumn(), console=err, transient=True)

    return progress_bar(err, bar, disable=disable)


def add_cmd(
    paths: Annotated[list[Path], typer.Argument(help="files or directories")],
    collection: Annotated[
        str, typer.Option("--collection", "-c", help="collection name")
    ] = "default",
    no_embed: Annotated[
        bool, typer.Option("--no-embed", help="keyword index only (fast); vectors later")
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="compute the vectors before returning (scripts)")
    ] = False,
    as_json: Annotated[bool, JSON_OPT] = False,
) -> None:
    """Index files and directories; re-running only re-indexes what changed.

    Keyword search works as soon as this returns; vectors follow in the background
    (`cozy knowledge stats` shows how many are pending) unless --wait."""
    from cozy.engines.capabilities import ManagesDocuments

    err = console(stderr=True)
    progress = _progress(err, "[bold]{task.description}", sizes=True, disable=as_json)
    task = progress.add_task("indexing", total=None, bytes="")
    sizes = {"done": 0, "total": 0}
    vectors_task: list[Any] = []

    def on_vectors(done: int, total: int) -> None:
        if not vectors_task:
            vectors_task.append(progress.add_task("embedding", total=total, bytes="chunks"))
        progress.update(vectors_task[0], completed=done)

    def on_plan(files: int, total_bytes: int) -> None:
        sizes["total"] = total_bytes
        progress.update(task, total=files, bytes=f"0 / {size(total_bytes)}")

    def on_result(r: Any) -> None:
        sizes["done"] += r.size
        shown = f"{size(sizes['done'])} / {size(sizes['total'])}"
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
            engine = await capable(rt, "knowledge", ManagesDocuments)
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


def embed_cmd(
    collection: Annotated[
        str | None, typer.Option("--collection", "-c", help="only this collection")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress output")] = False,
    as_json: Annotated[bool, JSON_OPT] = False,
) -> None:
    """Compute the vectors still missing (what `add` leaves to the background)."""
    from cozy.engines.capabilities import EmbedsLater

    err = console(stderr=True)
    progress = _progress(err, "embedding", sizes=False, disable=quiet or as_json)
    task = progress.add_task("embedding", total=None)

    async def go() -> dict[str, int]:
        async with runtime(engines=False) as rt:
            engine = await capable(rt, "knowledge", EmbedsLater)
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
        err.print(f"{result['embedded']} chunks embedded")
