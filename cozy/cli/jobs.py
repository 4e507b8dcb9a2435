"""`cozy jobs`: list, retry, run (drain) the durable background jobs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cozy.cli._common import console, print_json, run_async, runtime

if TYPE_CHECKING:
    from cozy.settings import Settings

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
    background: Annotated[
        bool,
        typer.Option(
            "--background", hidden=True, help="what `cozy run` starts: due jobs, one at a time"
        ),
    ] = False,
    deadline: Annotated[
        float, typer.Option("--deadline", hidden=True, help="with --background: seconds")
    ] = 600.0,
) -> None:
    """Run the pending jobs now, until none is left."""
    if background:
        raise typer.Exit(_background(deadline))

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


WORKER_LOCK = "jobs-worker.lock"
WORKER_LOG = "jobs-worker.log"


def _try_lock(path: Path) -> int | None:
    """An exclusive, non-blocking lock on `path` (the fd holding it), or None if taken."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no detached worker; jobs wait for `cozy jobs run`
        return None
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def spawn_background_worker(settings: Settings, overrides: dict[str, Any]) -> bool:
    """Start a detached `cozy jobs run --background` unless one is already running."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    lock = settings.data_dir / WORKER_LOCK
    fd = _try_lock(lock)
    if fd is None:
        return False  # a worker is running; it looks again before it exits
    os.close(fd)  # the child takes it; two children racing: one exits at once
    cmd = [sys.executable, "-m", "cozy"]
    for flag in ("config", "user"):
        if overrides.get(flag):
            cmd += [f"--{flag}", str(overrides[flag])]
    cmd += ["jobs", "run", "--background"]
    with open(settings.data_dir / WORKER_LOG, "ab") as log:
        subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,  # outlives this process and its terminal's Ctrl-C
            close_fds=True,
        )
    return True


def _background(deadline: float) -> int:
    """Drain due jobs under the worker lock; look again after letting it go, so a job
    queued while this worker was finishing is not left waiting for the next run."""
    import asyncio

    from cozy.cli._common import state

    lock = state.settings().data_dir / WORKER_LOCK
    ends = time.monotonic() + deadline

    async def drain() -> bool:
        async with runtime() as rt:
            try:
                async with asyncio.timeout(max(1.0, ends - time.monotonic())):
                    await rt.drain_jobs(include_deferred=False)
            except TimeoutError:
                return False
            return bool(await rt.jobs.due_count())

    while time.monotonic() < ends:
        fd = _try_lock(lock)
        if fd is None:
            return 0
        try:
            again = run_async(drain)
        finally:
            os.close(fd)
        if not again:
            return 0
    return 0
