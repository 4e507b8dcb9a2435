"""`cozy tools audit`: what each attempted tool call did, and who allowed it; `cozy tools
grants`: the "always" answers remembered per personality (and revoking them)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cozy.cli._common import (
    console,
    first_line,
    print_json,
    print_rows,
    run_async,
    runtime,
    state,
    when,
)


def audit_cmd(
    limit: Annotated[int, typer.Option("--limit", "-n", help="newest N calls")] = 20,
    tool: Annotated[str | None, typer.Option("--tool", help="only tools matching (glob)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout")] = False,
) -> None:
    """Every attempted tool call: who allowed it, what went in (redacted) and came out."""

    async def go() -> None:
        from fnmatch import fnmatchcase

        user = state.settings().user
        async with runtime(engines=False) as rt:
            rows = await rt.store.list_audit(user_id=user, limit=max(limit, 1) * 4)
        calls = [
            r
            for r in rows
            if r.get("kind") == "tool_call" and (not tool or fnmatchcase(r.get("tool") or "", tool))
        ][: max(limit, 1)]
        data = [_audit_row(r) for r in calls]
        print_rows(
            ("when", "tool", "level", "outcome", "allowed by", "ms", "arguments"),
            data,
            lambda d: (
                when(d["at"]),
                d["tool"],
                d["level"] or "-",
                d["status"],
                f"{d['approver'].get('by', d['decision'])} ({d['approver'].get('face', '-')})",
                f"{d['duration_ms']:.0f}" if d["duration_ms"] is not None else "-",
                first_line(d["arguments"], 50),
            ),
            as_json=as_json,
            empty="no tool calls audited yet",
        )

    run_async(go, as_json=as_json)


def _audit_row(r: dict[str, Any]) -> dict[str, Any]:
    detail = r.get("detail") or {}
    return {
        "id": r.get("id"),
        "at": r.get("created_at"),
        "tool": r.get("tool"),
        "level": r.get("level"),
        "decision": r.get("decision"),
        "status": r.get("status"),
        "duration_ms": r.get("duration_ms"),
        "session_id": r.get("session_id"),
        "personality": r.get("personality_id"),
        "approver": detail.get("approver") or {},
        "arguments": detail.get("arguments") or "",
        "result": detail.get("result") or "",
        "output_size": r.get("output_size"),
    }


def grants_cmd(
    revoke: Annotated[
        str | None, typer.Option("--revoke", help="forget the 'always' answer for this tool")
    ] = None,
    revoke_all: Annotated[
        bool, typer.Option("--revoke-all", help="revoke every grant (of -p when given)")
    ] = False,
    personality: Annotated[
        str | None, typer.Option("--personality", "-p", help="only this personality")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout")] = False,
) -> None:
    """Tools you allowed "always" per personality; --revoke TOOL to ask again."""

    async def go() -> int:
        from cozy.core.errors import NotFoundError
        from cozy.storage.tool_grants import ToolGrants

        user = state.settings().user
        async with runtime(engines=False) as rt:
            grants = ToolGrants(rt.store)
            if revoke or revoke_all:
                tool = None if revoke_all else revoke
                n = await grants.revoke(user, tool=tool, personality_id=personality)
                if n == 0:
                    raise NotFoundError(
                        f"no grant for {tool or 'any tool'}"
                        + (f" with personality '{personality}'" if personality else ""),
                        hint="see `cozy tools grants`",
                    )
                if as_json:
                    print_json({"revoked": n, "tool": tool, "personality": personality})
                else:
                    console().print(f"revoked {n} grant{'s' if n != 1 else ''}")
                return 0
            rows = await grants.list_grants(user, personality_id=personality)
        data: list[dict[str, Any]] = [
            {"tool": r.tool, "personality": r.personality_id, "granted_at": r.created_at}
            for r in rows
        ]
        print_rows(
            ("tool", "personality", "granted"),
            data,
            lambda d: (d["tool"], d["personality"], when(d["granted_at"])),
            as_json=as_json,
            empty="no remembered approvals",
        )
        return 0

    code = run_async(go, as_json=as_json)
    if code:
        raise typer.Exit(code)


def register_audit(app: typer.Typer) -> None:
    app.command("audit")(audit_cmd)
    app.command("grants")(grants_cmd)
