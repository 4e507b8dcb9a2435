"""`cozy migrate [up|status]`: bring the database (SQLite or Postgres) to this cozy's schema."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cozy.cli._common import console, fail, print_json, run_async, state


def register(app: typer.Typer) -> None:
    @app.command("migrate")
    def migrate_cmd(
        action: Annotated[
            str, typer.Argument(help="up (apply pending steps, the default) or status")
        ] = "up",
        as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    ) -> None:
        """Apply or show the schema migrations of COZY_DATABASE_URL (or the local database)."""
        if action not in ("up", "status"):
            fail(
                f"unknown action '{action}': use `cozy migrate up` or `cozy migrate status`", code=2
            )
        from cozy.storage import pg_admin

        url = state.settings().db_url

        async def go() -> dict[str, Any]:
            if action == "status":
                return await pg_admin.status(url)
            return await pg_admin.upgrade(url)

        report = run_async(go, as_json=as_json)
        if as_json:
            print_json(report)
        else:
            _show(action, report)
        if report["newer"]:
            raise typer.Exit(1)


def _show(action: str, report: dict[str, Any]) -> None:
    out = console()
    out.print(f"database: {report['database']} ({report['dialect']})")
    if action == "up":
        ran = report.get("ran") or []
        out.print(f"applied now: {', '.join(ran) if ran else 'nothing (already up to date)'}")
    out.print(f"applied: {len(report['applied'])}  pending: {len(report['pending'])}")
    for name in report["pending"]:
        out.print(f"  pending  {name}")
    if report["unknown"]:
        console(stderr=True).print(
            f"error: the database has migrations this cozy does not know: "
            f"{', '.join(report['unknown'])} — it was written by a newer cozy; upgrade cozy"
        )
    vectors = report["vectors"]
    out.print(f"vectors: {vectors['path']} — {vectors['detail']}")
