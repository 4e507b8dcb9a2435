"""`cozy sessions`: list, show, rename, rm, restore, export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cozy.cli._common import console, print_json, print_rows, run_async, runtime, state, when

if TYPE_CHECKING:
    from cozy.runtime import Runtime
    from cozy.storage.store import MessageRow, SessionRow

sessions_app = typer.Typer(help="Browse, export and delete chat sessions.", no_args_is_help=True)


async def _resolve(rt: Runtime, ref: str) -> SessionRow:
    from cozy.core.errors import NotFoundError

    user = state.settings().user
    if ref == "last":
        row = await rt.store.last_session(user)
        if row is None:
            raise NotFoundError("there are no sessions yet", hint='start one with `cozy run "hi"`')
        return row
    return await rt.store.get_session(ref, user_id=user)


def _session_dict(s: SessionRow) -> dict[str, Any]:
    return {
        "id": s.id,
        "title": s.title,
        "personality": s.personality_id,
        "model": s.model,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
        "deleted_at": s.deleted_at,
        "messages": s.message_count,
    }


def _message_dict(m: MessageRow) -> dict[str, Any]:
    return {
        "id": m.id,
        "role": m.role,
        "content": m.content,
        "status": m.status,
        "tool_calls": m.tool_calls,
        "tool_call_id": m.tool_call_id,
        "name": m.name,
        "created_at": m.created_at,
        "usage": {"prompt_tokens": m.prompt_tokens, "completion_tokens": m.completion_tokens},
        "latency_ms": m.latency_ms,
        "metadata": m.metadata,
    }


def to_markdown(s: SessionRow, msgs: list[MessageRow]) -> str:
    lines = [
        f"# {s.title or s.id}",
        "",
        f"- session: `{s.id}`",
        f"- personality: {s.personality_id}",
        f"- started: {when(s.created_at)}",
        "",
    ]
    for m in msgs:
        who = {
            "user": "You",
            "assistant": "Assistant",
            "tool": f"Tool {m.name or ''}".strip(),
            "system": "System",
        }.get(m.role, m.role)
        flag = "" if m.status == "complete" else f" _({m.status})_"
        lines.append(f"## {who}{flag}")
        lines.append("")
        if m.content:
            lines.append(m.content)
        for c in m.tool_calls or []:
            lines.append(f"\n`{c.get('name')}({c.get('arguments')})`")
        lines.append("")
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    app.add_typer(sessions_app, name="sessions")


@sessions_app.command("list")
def list_cmd(
    search: Annotated[str | None, typer.Option("--search", "-q", help="title or content")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n")] = 30,
    deleted: Annotated[bool, typer.Option("--deleted", help="include deleted")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List sessions, newest first."""

    async def go() -> list[SessionRow]:
        async with runtime(engines=False) as rt:
            return await rt.store.list_sessions(
                state.settings().user, limit=limit, query=search, include_deleted=deleted
            )

    rows = run_async(go, as_json=as_json)

    def cells(s: SessionRow) -> tuple[str, ...]:
        title = (s.title or "")[:60] + (" (deleted)" if s.deleted_at else "")
        return s.id, when(s.updated_at), s.personality_id, str(s.message_count), title

    empty = (
        f"no session matches {search!r} (`cozy sessions list` lists all)"
        if search
        else 'no sessions yet — start one with `cozy run "hello"` or `cozy chat`'
    )
    columns = ("id", "updated", "personality", "msgs", "title")
    print_rows(
        columns, rows, cells, as_json=as_json, data=[_session_dict(s) for s in rows], empty=empty
    )


@sessions_app.command("show")
def show_cmd(
    ref: Annotated[str, typer.Argument(help="session id or 'last'")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show a session's messages."""

    async def go() -> tuple[SessionRow, list[MessageRow]]:
        async with runtime(engines=False) as rt:
            s = await _resolve(rt, ref)
            return s, await rt.store.list_messages(s.id)

    s, msgs = run_async(go, as_json=as_json)
    if as_json:
        print_json({**_session_dict(s), "messages": [_message_dict(m) for m in msgs]})
        return
    from rich.markdown import Markdown

    console().print(Markdown(to_markdown(s, msgs)))


@sessions_app.command("export")
def export_cmd(
    ref: Annotated[str, typer.Argument(help="session id or 'last'")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="md or json")] = "md",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="file to write")] = None,
) -> None:
    """Export a session as Markdown or JSON."""
    if fmt not in ("md", "json"):
        raise typer.BadParameter("--format must be md or json")

    async def go() -> tuple[SessionRow, list[MessageRow]]:
        async with runtime(engines=False) as rt:
            s = await _resolve(rt, ref)
            return s, await rt.store.list_messages(s.id)

    s, msgs = run_async(go)
    if fmt == "md":
        text = to_markdown(s, msgs)
    else:
        body = {**_session_dict(s), "messages": [_message_dict(m) for m in msgs]}
        text = json.dumps(body, indent=2, ensure_ascii=False, default=str)
    if output:
        output.write_text(text + "\n", encoding="utf-8")
        typer.echo(f"wrote {output}", err=True)
    else:
        typer.echo(text)


@sessions_app.command("rename")
def rename_cmd(ref: str, title: str) -> None:
    """Rename a session."""

    async def go() -> None:
        async with runtime(engines=False) as rt:
            s = await _resolve(rt, ref)
            await rt.store.update_session(s.id, s.user_id, title=title)

    run_async(go)


@sessions_app.command("rm")
def rm_cmd(ref: Annotated[str, typer.Argument(help="session id or 'last'")]) -> None:
    """Delete a session (soft: `cozy sessions restore ID` brings it back)."""

    async def go() -> str:
        async with runtime(engines=False) as rt:
            s = await _resolve(rt, ref)
            await rt.store.delete_session(s.id, s.user_id)
            return s.id

    sid = run_async(go)
    typer.echo(f"deleted {sid} (undo with `cozy sessions restore {sid}`)", err=True)


@sessions_app.command("restore")
def restore_cmd(session_id: str) -> None:
    """Bring back a deleted session."""

    async def go() -> None:
        async with runtime(engines=False) as rt:
            s = await rt.store.get_session(
                session_id, user_id=state.settings().user, include_deleted=True
            )
            await rt.store.restore_session(s.id, s.user_id)

    run_async(go)


@sessions_app.command("summary")
def summary_cmd(
    ref: Annotated[str, typer.Argument(help="session id or 'last'")],
    regenerate: Annotated[
        bool, typer.Option("--regenerate", help="rebuild it now with the model")
    ] = False,
    model: Annotated[str | None, typer.Option("--model", "-m")] = None,
    history: Annotated[bool, typer.Option("--history", help="superseded ones too")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show (or rebuild) the rolling summary of a session's older messages."""

    async def go() -> list[dict[str, Any]]:
        async with runtime() as rt:
            s = await _resolve(rt, ref)
            summaries = rt.summarizer.summaries
            if regenerate:
                await rt.summarizer.regenerate(s.id, model or s.model)
            if history:
                return [x.to_dict() for x in await summaries.history(s.id)]
            latest = await summaries.latest(s.id)
            return [latest.to_dict()] if latest else []

    rows = run_async(go, as_json=as_json)
    if as_json:
        print_json(rows[-1] if rows and not history else rows)
        return
    if not rows:
        if regenerate:  # nothing older than the recent messages: nothing to summarise
            typer.echo("nothing to summarise: every message of the session is recent")
        else:
            typer.echo(
                "no summary yet: the session still fits the context window "
                "(`--regenerate` summarises it now)"
            )
        return
    for row in rows:
        flag = " (superseded)" if row["superseded_at"] else ""
        typer.echo(
            f"# {row['message_count']} messages up to {row['last_message_id']}"
            f" — {row['model']}{flag}\n\n{row['text']}\n"
        )
