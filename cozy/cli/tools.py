"""`cozy tools`: list, call, servers (grants and audit: tools_audit.py; prompts, resources,
logs: tools_mcp.py; import-claude-config: tools_config.py).

Everything goes through the runtime: the tools engine it built from engines.yaml
and the same ToolRunner the chat uses (policy, approvals, grants, audit).
"""

from __future__ import annotations

import json
import sys
import uuid
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cozy.cli._common import console, first_line, print_json, print_rows, run_async, runtime, state

if TYPE_CHECKING:
    from cozy.core.types import ToolSpec
    from cozy.engines.base import ToolsEngine
    from cozy.runtime import Runtime

tools_app = typer.Typer(
    help="Tools from MCP servers and cozy's built-ins: list, call, servers, grants.",
    no_args_is_help=True,
)


def _engine(rt: Runtime) -> ToolsEngine:
    engine = rt.orchestrator.tools.engine
    if engine is None:
        from cozy.core.errors import ConfigError

        raise ConfigError(
            "no tools engine is configured",
            hint="set `tools: {provider: builtin}` or `tools: {provider: mcp, servers: ...}` "
            "in engines.yaml (`cozy config path` shows where it is)",
        )
    return engine


async def _all_specs(rt: Runtime) -> list[ToolSpec]:
    return (await _engine(rt).list_tools_for(["*"]))[0]


async def _specs_for(rt: Runtime, name: str) -> tuple[list[ToolSpec], list[str]]:
    """The tools of the server `name` belongs to (only that server is started)."""
    engine = _engine(rt)
    server = name.split(".", 1)[0] if "." in name else name.split("__", 1)[0]
    return await engine.list_tools_for([f"{server}.*", name])


def _find(specs: list[ToolSpec], name: str) -> ToolSpec:
    by_name = {s.name: s for s in specs}
    spec = by_name.get(name) or next((s for s in specs if s.wire_name == name), None)
    if spec is not None:
        return spec
    from difflib import get_close_matches

    from cozy.core.errors import NotFoundError

    close = get_close_matches(name, list(by_name), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else "see `cozy tools list`"
    raise NotFoundError(f"unknown tool '{name}'", hint=hint)


def parse_kv(pairs: list[str], spec: ToolSpec, base: str | None) -> dict[str, Any]:
    """`key=value` pairs: values are JSON when they parse, except for string fields."""
    from cozy.core.errors import UsageError

    args: dict[str, Any] = {}
    if base:
        try:
            loaded = json.loads(base)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--args is not valid JSON ({exc.msg})") from exc
        if not isinstance(loaded, dict):
            raise UsageError('--args must be a JSON object, e.g. \'{"path": "README.md"}\'')
        args.update(loaded)
    props = spec.parameters.get("properties") or {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise UsageError(
                f"argument '{pair}' is not key=value",
                hint=f"e.g. `cozy tools call {spec.name} path=README.md count=3`",
            )
        kind = (props.get(key) or {}).get("type")
        if kind == "string" or (isinstance(kind, list) and "string" in kind and raw[:1] != "{"):
            args[key] = raw
            continue
        try:
            args[key] = json.loads(raw)
        except json.JSONDecodeError:
            args[key] = raw
    return args


def _personalities_for(rt: Runtime, name: str) -> list[str]:
    return [p.id for p in rt.personalities.all().values() if p.allows_tool(name)]


@tools_app.command("list")
def list_cmd(
    server: Annotated[str | None, typer.Option("--server", help="only this server")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout")] = False,
) -> None:
    """Tools with their server, side-effect level and the personalities allowed to use them."""

    async def go() -> None:
        async with runtime() as rt:
            engine = _engine(rt)
            specs, problems = await engine.list_tools_for([f"{server}.*"] if server else ["*"])
            if server:
                specs = [s for s in specs if s.server == server]
            err = console(stderr=True)
            for problem in problems:  # listed, not hidden: the rest still show
                err.print(f"warning: {problem}", markup=False)
            for srv, tools in (getattr(engine, "hidden", None) or {}).items():
                for tool, why in tools.items():
                    if not server or srv == server:
                        err.print(f"note: {srv}.{tool} is not offered: {why}", markup=False)
            rows: list[dict[str, Any]] = [
                {
                    "name": s.name,
                    "server": s.server,
                    "level": s.level,
                    "description": s.description,
                    "personalities": _personalities_for(rt, s.name),
                    "parameters": s.parameters,
                }
                for s in sorted(specs, key=lambda s: (s.server, s.name))
            ]
            where = f" on server '{server}'" if server else ""
            print_rows(
                ("tool", "server", "level", "personalities", "description"),
                rows,
                lambda r: (
                    r["name"],
                    r["server"],
                    r["level"],
                    ", ".join(r["personalities"]) or "-",
                    first_line(r["description"]),
                ),
                as_json=as_json,
                empty=f"no tools{where}; see `cozy tools servers`",
            )

    run_async(go, as_json=as_json)


@tools_app.command("call")
def call_cmd(
    name: Annotated[str, typer.Argument(help="tool name, e.g. fs.read_file")],
    pairs: Annotated[
        list[str] | None, typer.Argument(help="arguments as key=value (JSON values allowed)")
    ] = None,
    args_json: Annotated[
        str | None, typer.Option("--args", help="arguments as one JSON object")
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="approve this write/network tool")
    ] = False,
    yes_dangerous: Annotated[
        bool, typer.Option("--yes-dangerous", help="approve it even if it is dangerous")
    ] = False,
    personality: Annotated[
        str | None,
        typer.Option("--personality", "-p", help="call as this personality (its tools, grants)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout")] = False,
) -> None:
    """Call one tool directly, under the same policy as a chat (asks unless --yes)."""
    code = run_async(
        lambda: _call(
            name, pairs or [], args_json, yes or yes_dangerous, yes_dangerous, personality, as_json
        ),
        as_json=as_json,
    )
    if code:
        raise typer.Exit(code)


async def _call(
    name: str,
    pairs: list[str],
    args_json: str | None,
    yes: bool,
    yes_dangerous: bool,
    personality: str | None,
    as_json: bool,
) -> int:
    from cozy.cli import approve
    from cozy.cli.run import tty_approver, tty_elicitor
    from cozy.core.errors import NotFoundError, PermissionDenied
    from cozy.core.events import ToolResult
    from cozy.core.types import Caller, Message, ToolCall
    from cozy.engines.base import ToolContext

    settings = state.settings()
    async with runtime() as rt:
        specs, problems = await _specs_for(rt, name)
        try:
            spec = _find(specs, name)
        except NotFoundError:
            if problems:  # the server is configured but did not start: say that
                raise NotFoundError(
                    f"{name} is not available: {'; '.join(problems)}",
                    hint="`cozy tools servers` shows every server's state and error",
                ) from None
            spec = _find(await _all_specs(rt), name)  # suggestions from every server
        args = parse_kv(pairs, spec, args_json)
        persona = rt.personalities.get(personality or settings.personality)
        if personality and not persona.allows_tool(spec.name):
            raise PermissionDenied(
                f"personality '{persona.id}' does not allow {spec.name} "
                f"(its tools: {', '.join(persona.tools) or 'none'})",
                hint="add a glob for it to the personality's `tools:` list, or call it without -p",
            )
        caller = Caller(
            user_id=settings.user,
            role="admin",
            face="cli",
            allowed_tools=[spec.name],  # --yes approves the tool named here, nothing else
            auto_approve=yes,
            auto_approve_dangerous=yes_dangerous,
        )
        ctx = ToolContext(caller, None, persona.id, f"cli-{uuid.uuid4().hex[:12]}")
        ctx.extra["elicit"] = tty_elicitor  # a form the server asks for, on the terminal
        call = ToolCall(f"call_{uuid.uuid4().hex[:12]}", spec.name, json.dumps(args))
        results: list[Message] = []
        result: ToolResult | None = None
        approver = tty_approver
        async for event in rt.orchestrator.tools.run(
            [call], {spec.name: spec}, ctx, approver, results
        ):
            if isinstance(event, ToolResult):
                result = event
    assert result is not None
    if as_json:
        print_json({**result.to_dict(), "level": spec.level, "arguments": args})
    elif result.is_error:
        sys.stderr.write(f"error: {result.content}\n")
    else:
        sys.stdout.write(result.content + ("" if result.content.endswith("\n") else "\n"))
    if result.is_error and result.decision == "deny":
        flag = "--yes-dangerous" if spec.level == "dangerous" else "--yes"
        why = f" ({approve.last_problem})" if approve.last_problem else ""
        sys.stderr.write(
            f"hint: not approved{why}; pass {flag} to approve this {spec.level} tool\n"
        )
    return 1 if result.is_error else 0


@tools_app.command("servers")
def servers_cmd(
    no_start: Annotated[
        bool, typer.Option("--no-start", help="do not start servers to check them")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout")] = False,
) -> None:
    """MCP servers: state, pid, tool count, last error (starts them to check)."""

    from cozy.engines.capabilities import ReportsServers

    async def go() -> int:
        async with runtime() as rt:
            engine = rt.orchestrator.tools.engine
            rows: list[dict[str, Any]] = []
            if engine is not None:
                if not no_start:  # starts every server; failures are recorded
                    await engine.list_tools_for(["*"])
                if isinstance(engine, ReportsServers):
                    rows = await engine.servers_status()
                else:
                    count = len(await engine.list_tools())
                    rows = [
                        {
                            "name": engine.provider_name or "builtin",
                            "transport": "builtin",
                            "state": "running",
                            "pid": None,
                            "tool_count": count,
                            "last_error": None,
                        }
                    ]
        print_rows(
            ("server", "transport", "state", "pid", "tools", "last error"),
            rows,
            lambda r: (
                str(r.get("name")),
                str(r.get("transport") or ""),
                str(r.get("state") or ""),
                str(r.get("pid") or "-"),
                str(r.get("tool_count") if r.get("tool_count") is not None else "-"),
                str(r.get("last_error") or ""),
            ),
            as_json=as_json,
            empty="no tools engine configured (see `cozy config path`)",
        )
        for r in rows:
            if r.get("fix") and not as_json:
                console().print(f"fix for {r.get('name')}: {r['fix']}", markup=False)
        return 1 if any(r.get("state") == "failed" for r in rows) else 0

    code = run_async(go, as_json=as_json)
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    from cozy.cli.tools_audit import register_audit
    from cozy.cli.tools_config import register_config
    from cozy.cli.tools_mcp import register_mcp

    register_audit(tools_app)
    register_mcp(tools_app)
    register_config(tools_app)
    app.add_typer(tools_app, name="tools")
