"""`cozy export FILE` / `cozy import FILE`: move a cozy database (e.g. local SQLite → Postgres)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cozy.cli._common import console, print_json, run_async, state

JSON_OPT = typer.Option("--json", help="machine-readable output")


def _show(verb: str, report: dict[str, Any], where: str) -> None:
    out = console()
    out.print(f"{verb} {report['rows']} rows {where}")
    for name, count in report["tables"].items():
        if count:
            out.print(f"  {name:<22} {count}")


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export_cmd(
        path: Annotated[Path, typer.Argument(help="file to write (.jsonl, or .jsonl.gz)")],
        as_json: Annotated[bool, JSON_OPT] = False,
    ) -> None:
        """Write every user, session, message, memory, profile slot, knowledge chunk and job."""
        from cozy.storage.pg_admin import where
        from cozy.storage.transfer import export_db

        url = state.settings().db_url
        report = run_async(lambda: export_db(url, path), as_json=as_json).to_dict()
        if as_json:
            print_json(report)
        else:
            _show("exported", report, f"from {where(url)} to {path}")

    @app.command("import")
    def import_cmd(
        path: Annotated[Path, typer.Argument(help="a file written by `cozy export`")],
        merge: Annotated[
            bool, typer.Option("--merge", help="keep rows already there (same ids are skipped)")
        ] = False,
        as_json: Annotated[bool, JSON_OPT] = False,
    ) -> None:
        """Load an export into the database in COZY_DATABASE_URL (all rows or none)."""
        from cozy.storage.pg_admin import where
        from cozy.storage.transfer import import_db

        url = state.settings().db_url
        report = run_async(lambda: import_db(url, path, merge=merge), as_json=as_json).to_dict()
        if as_json:
            print_json(report)
        else:
            _show("imported", report, f"from {path} into {where(url)}")
