"""`cozy jobs`: list, retry, run (drain) the durable background jobs."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from cozy.cli._common import console, print_json, run_async, runtime

jobs_app = typer.Typer(help="Background work (memory extraction, profile updates).")

JSON_OPT = typer.Option("--json", help="machine-readable output")


def register(app: typer.Typer) -> None:
    app.add_typer(jobs_app, name="jobs")


def _when(ts: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts)) if ts else "-"


@jobs_app.command("list")
def list_cmd(
    status: Annotated[
        str | None, typer.Option("--status", help="pending, running, done or failed")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000)] = 50,
    as_json: Annotated[bool, JSON_OPT] = False,
) -> None:
    """Jobs, newest first, with their attempts and last error."""
    if status is not None and status not in ("pending", "running", "done", "failed"):
        console(stderr=True).print("error: --status must be pending, running, done or failed")
        raise typer.Exit(2)

    async def go() -> None:
        async with runtime(engines=False) as rt:
            rows = await rt.jobs.list(status=status, limit=limit)
            counts = await rt.jobs.counts()
        if as_json:
            print_json({"counts": counts, "jobs": [j.to_dict() for j in rows]})
            return
        out = console()
        out.print(", ".join(f"{k}: {v}" for k, v in counts.items()))
        for j in rows:
            err = f"  [red]{j.last_error}[/]" if j.last_error else ""
            out.print(
                f"{j.id}  {j.kind:<16} {j.status:<8} attempts {j.attempts}/{j.max_attempts}  "
                f"due {_when(j.run_after)}{err}"
            )

    run_async(go, as_json=as_json)


@jobs_app.command("retry")
def retry_cmd(
    job_id: Annotated[str, typer.Argument(help="job id (see `cozy jobs list --status failed`)")],
) -> None:
    """Queue a failed job again, now, with fresh attempts."""

    async def go() -> None:
        async with runtime(engines=False) as rt:
            job = await rt.jobs.retry(job_id)
        console().print(f"queued {job.id} ({job.kind}) — run it with `cozy jobs run`")

    run_async(go)


@jobs_app.command("run")
def run_cmd(
    due_only: Annotated[
        bool, typer.Option("--due-only", help="skip jobs still waiting for their buffer/backoff")
    ] = False,
    as_json: Annotated[bool, JSON_OPT] = False,
) -> None:
    """Run the pending jobs now, until none is left."""

    async def go() -> int:
        async with runtime() as rt:
            stats = await rt.drain_jobs(include_deferred=not due_only)
            counts = await rt.jobs.counts()
        if as_json:
            print_json({**stats.to_dict(), "counts": counts})
        else:
            console().print(
                f"done {stats.done}, will retry {stats.retried}, failed {stats.failed}; "
                f"pending now {counts['pending']}"
            )
            for e in stats.errors:
                console(stderr=True).print(f"  {e} — see `cozy jobs list --status failed`")
        return stats.failed

    if run_async(go, as_json=as_json):
        raise typer.Exit(1)
