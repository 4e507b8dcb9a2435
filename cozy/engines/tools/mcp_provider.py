"""The `mcp` tools provider: MCP servers over stdio, streamable HTTP and SSE.

Options (engines.yaml `tools:` minus `provider`):

    servers:          {name: {command, args, env, cwd, levels, timeout, limits}
                       | {url, headers, transport, levels, timeout}}
    builtin: true     also expose the builtin tools
    timeout: 30       per call, seconds (per-server `timeout` overrides)
    startup_timeout: 30
    max_output_chars: 20000
    schema_ttl: 600   tool schema cache, seconds
    shutdown_timeout: 2.5   graceful stop per server before SIGKILL
    limits: {cpu_seconds: 3600, memory_mb: 8192}   stdio sandbox (0 disables)

Servers start lazily on first use and live until `close()`. A server that fails to
start, hangs or dies is reported in `servers_status()` and skipped; a call to it
returns an error ToolOutput, and the next use reconnects.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Sequence
from fnmatch import fnmatchcase
from typing import Any

from cozy.core.types import ToolOutput, ToolSpec
from cozy.engines.base import EngineContext, Health, ToolContext, ToolsEngine
from cozy.engines.tools.builtin import BuiltinFn, BuiltinTools
from cozy.engines.tools.content import result_parts
from cozy.engines.tools.levels import resolve_level
from cozy.engines.tools.mcp_client import (
    CallFailed,
    CallTimeout,
    MCPServerConnection,
    ServerStatus,
    ServerUnavailable,
)
from cozy.engines.tools.mcp_common import ended
from cozy.engines.tools.mcp_config import MCPOptions, import_claude_config, parse_servers
from cozy.engines.tools.mcp_extras import PromptInfo, ResourceInfo, ResourceText
from cozy.engines.tools.mcp_health import probed
from cozy.engines.tools.mcp_logs import log_dir
from cozy.engines.tools.mcp_oauth import auth_dir
from cozy.engines.tools.mcp_servers import MCPServers
from cozy.engines.tools.sandbox import cap_output, validate_arguments

__all__ = ["MCPTools", "ServerStatus", "import_claude_config"]

# OpenAI-style APIs reject function names over 64 characters; the wire name is the
# qualified name with "." as "__".
MAX_WIRE_NAME = 64


def qualified_name(server: str, tool: str) -> str:
    """`server.tool`, shortened with a stable hash suffix when its wire name is too long."""
    name = f"{server}.{tool}"
    if len(name.replace(".", "__")) <= MAX_WIRE_NAME:
        return name
    digest = hashlib.sha1(tool.encode()).hexdigest()[:8]
    room = MAX_WIRE_NAME - len(server.replace(".", "__")) - 2 - 9
    short = tool[: max(room, 1)].replace(".", "_")
    return f"{server}.{short}-{digest}"


def reaches(patterns: Sequence[str], server: str) -> bool:
    """Could one of these tool globs match a tool of `server` (tools are server.tool)?"""
    for pattern in patterns:
        head, dot, _rest = pattern.partition(".")
        wild = any(c in head for c in "*?[")
        if not dot:  # a glob over the whole name ("*", "*_file") may match any server
            if wild:
                return True
        elif fnmatchcase(server, head) if wild else head == server:
            return True
    return False


class MCPTools(ToolsEngine):
    Options = MCPOptions
    provider_name = "mcp"

    def __init__(
        self, options: dict[str, Any] | None = None, ctx: EngineContext | None = None
    ) -> None:
        super().__init__(options, ctx)
        o = self.opts = MCPOptions.of(self.options, "tools")
        self.timeout = o.timeout
        self.max_output_chars = o.max_output_chars
        settings = ctx.settings if ctx is not None else None
        self.log_dir = log_dir(settings.data_dir) if settings is not None else None
        tokens = auth_dir(settings.data_dir) if settings is not None else None
        self._conns: dict[str, MCPServerConnection] = {
            cfg.name: MCPServerConnection(
                cfg,
                schema_ttl=o.schema_ttl,
                grace=o.shutdown_timeout,
                log_dir=self.log_dir,
                auth_dir=tokens,
            )
            for cfg in parse_servers(o)
        }
        self.servers = MCPServers(self._conns, self.timeout, self.log_dir)
        self._builtin: BuiltinTools | None = None
        if o.builtin:
            self._builtin = BuiltinTools(
                {"timeout": self.timeout, "max_output_chars": self.max_output_chars}, ctx
            )
        # per server: (tools list identity, generation) -> specs by qualified name
        self._specs: dict[str, tuple[int, int, dict[str, tuple[str, ToolSpec]]]] = {}
        # per server: tools not offered, with the reason (e.g. they need MCP tasks)
        self.hidden: dict[str, dict[str, str]] = {}

    # -- engine surface --------------------------------------------------------------

    def register_builtin(self, spec: ToolSpec, fn: BuiltinFn) -> None:
        """Contribute a built-in tool at runtime (needs `builtin: true`)."""
        if self._builtin is None:
            self._builtin = BuiltinTools({"timeout": self.timeout}, self.ctx)
        self._builtin.register(spec, fn)

    async def list_tools(self) -> list[ToolSpec]:
        return (await self._list(None))[0]

    async def list_tools_for(self, patterns: Sequence[str]) -> tuple[list[ToolSpec], list[str]]:
        """Only the servers `patterns` can reach are started (in parallel, each within
        its start-up timeout); the others cost nothing."""
        specs, problems = await self._list(patterns)
        return [s for s in specs if any(fnmatchcase(s.name, p) for p in patterns)], problems

    async def _list(self, patterns: Sequence[str] | None) -> tuple[list[ToolSpec], list[str]]:
        out: list[ToolSpec] = []
        if self._builtin is not None:
            out.extend(await self._builtin.list_tools())
        conns = [
            c
            for c in self._conns.values()
            if not c.cfg.disabled and (patterns is None or reaches(patterns, c.cfg.name))
        ]
        results = await asyncio.gather(
            *(self._server_specs(c) for c in conns), return_exceptions=True
        )
        problems: list[str] = []
        for conn, result in zip(conns, results, strict=True):
            if isinstance(result, dict):
                out.extend(spec for _raw, spec in result.values())
            elif isinstance(result, Exception):
                problems.append(f"tools from '{conn.cfg.name}' unavailable: {result}")
            elif isinstance(result, BaseException):
                raise result  # cancellation and friends are not "a server failed"
        return out, problems

    async def execute_tool(
        self, name: str, arguments: dict[str, Any], ctx: ToolContext
    ) -> ToolOutput:
        start = time.perf_counter()
        out = await self._execute(name, arguments, ctx)
        out.duration_ms = (time.perf_counter() - start) * 1000
        return out

    async def servers_status(self) -> list[dict[str, Any]]:
        """One dict per server: name, transport, target, state, pid, tool_count,
        last_error, start_ms, restarts (plus a `builtin` row when enabled)."""
        rows = [c.status.to_dict() for c in self._conns.values()]
        for row, conn in zip(rows, self._conns.values(), strict=True):
            if row["state"] == "running" and not conn._healthy():
                row["state"] = "failed"
                row["last_error"] = row["last_error"] or ended(conn.exit_record(), conn.cfg.name)
            row["hidden_tools"] = dict(self.hidden.get(conn.cfg.name, {}))
            row["stderr_bytes"] = conn.process.stderr_total()
            if row["state"] == "failed":
                row["fix"] = conn._hint()
        if self._builtin is not None:
            count = len(await self._builtin.list_tools())
            rows.insert(
                0,
                ServerStatus(
                    name="builtin", transport="builtin", state="running", tool_count=count
                ).to_dict(),
            )
        return rows

    async def health_check(self) -> Health:
        """Without starting anything: config errors, failed servers, and stdio commands
        or working directories that do not exist."""
        await asyncio.gather(*(probed(conn) for conn in self._conns.values()))
        bad = [
            f"{s['name']}: {s['last_error']}"
            for s in await self.servers_status()
            if s["state"] == "failed"
        ]
        for conn in self._conns.values():
            problem = None
            if conn.status.state not in ("failed", "disabled"):
                problem = conn.process.offline_problem()
            if problem:
                bad.append(f"{conn.cfg.name}: {problem}")
        active = sum(1 for c in self._conns.values() if not c.cfg.disabled)
        if not bad:
            return Health(ok=True, detail=f"{active} MCP servers configured")
        fix = (
            "fix the command, args or url of that server in engines.yaml (or set "
            "`disabled: true` on it), then check with `cozy tools servers`"
        )
        if all("cozy tools login" in b for b in bad):
            fix = "log in as each line says (`cozy tools login NAME`)"
        return Health(ok=False, detail="; ".join(bad), fix=fix)

    async def initialize(self) -> None:
        if self.opts.eager:
            await self.list_tools()

    async def close(self) -> None:
        """Stop every server, bounded and shielded: a cancelled caller leaves no process."""
        conns = list(self._conns.values())
        task = asyncio.ensure_future(
            asyncio.gather(*(c.stop() for c in conns), return_exceptions=True)
        )
        try:
            await asyncio.shield(task)
        except BaseException:
            for conn in conns:
                conn.kill_now()
            raise
        finally:
            self._specs.clear()  # servers start again lazily if the engine is reused

    # -- prompts, resources, logs and login (MCP beyond tools: see mcp_servers) ------

    async def list_prompts(self, server: str | None = None) -> tuple[list[PromptInfo], list[str]]:
        return await self.servers.list_prompts(server)

    async def get_prompt(self, qualified: str, arguments: dict[str, str]) -> list[dict[str, str]]:
        return await self.servers.get_prompt(qualified, arguments)

    async def list_resources(
        self, server: str | None = None
    ) -> tuple[list[ResourceInfo], list[str]]:
        return await self.servers.list_resources(server)

    async def read_resource(self, server: str, uri: str) -> ResourceText:
        return await self.servers.read_resource(server, uri)

    async def login(
        self, server: str, show_url: Callable[[str], Awaitable[None]]
    ) -> dict[str, Any]:
        return await self.servers.login(server, show_url)

    def resource_updates(self, server: str) -> list[tuple[float, str]]:
        return self.servers.resource_updates(server)

    def server_logs(
        self, server: str | None = None, *, limit: int = 50, level: str = "debug"
    ) -> list[dict[str, Any]]:
        return self.servers.server_logs(server, limit=limit, level=level)

    # -- internals -----------------------------------------------------------------

    async def _server_specs(self, conn: MCPServerConnection) -> dict[str, tuple[str, ToolSpec]]:
        tools = await conn.list_tools()
        key = (id(tools), conn.generation)
        cached = self._specs.get(conn.cfg.name)
        if cached is not None and cached[:2] == key:
            return cached[2]
        specs: dict[str, tuple[str, ToolSpec]] = {}
        hidden: dict[str, str] = {}
        for tool in tools:
            execution = getattr(tool, "execution", None)
            if getattr(execution, "task_support", None) == "required":
                hidden[tool.name] = (
                    "needs MCP task augmentation (execution.taskSupport: required), "
                    "which cozy does not run yet"
                )
                continue
            qualified = qualified_name(conn.cfg.name, tool.name)
            specs[qualified] = (
                tool.name,
                ToolSpec(
                    name=qualified,
                    description=tool.description or getattr(tool, "title", None) or "",
                    parameters=tool.input_schema or {"type": "object"},
                    level=resolve_level(
                        tool.name,
                        tool.annotations,
                        conn.cfg.levels,
                        trusted=conn.cfg.trust_annotations,
                    ),
                    server=conn.cfg.name,
                ),
            )
        self._specs[conn.cfg.name] = (key[0], key[1], specs)
        self.hidden[conn.cfg.name] = hidden
        return specs

    def _resolve(self, name: str) -> tuple[MCPServerConnection | None, str]:
        server, _, _tool = name.partition(".")
        conn = self._conns.get(server)
        if conn is None and "." not in name and "__" in name:
            name = name.replace("__", ".", 1)  # a wire name slipped through
            conn = self._conns.get(name.partition(".")[0])
        return conn, name

    async def _execute(self, name: str, arguments: dict[str, Any], ctx: ToolContext) -> ToolOutput:
        if self._builtin is not None and self._builtin.has_tool(name):
            return await self._builtin.execute_tool(name, arguments, ctx)
        conn, name = self._resolve(name)
        if conn is None:
            servers = ", ".join(sorted(self._conns)) or "none"
            return ToolOutput(
                f"unknown tool '{name}': tool names look like <server>.<tool>; "
                f"configured servers: {servers}",
                is_error=True,
            )
        try:
            specs = await self._server_specs(conn)
        except ServerUnavailable as exc:
            return ToolOutput(f"{name} is unavailable: {exc}", is_error=True)
        entry = specs.get(name)
        if entry is None:
            known = ", ".join(sorted(specs)) or "none"
            return ToolOutput(
                f"unknown tool '{name}'; tools on '{conn.cfg.name}': {known}", is_error=True
            )
        raw, spec = entry
        problem = validate_arguments(spec.parameters, arguments)
        if problem:
            return ToolOutput(f"{name}: {problem}", is_error=True)
        timeout = conn.cfg.timeout or self.timeout
        try:
            result = await conn.call(
                raw, arguments, timeout, ctx.extra.get("on_progress"), ctx.extra
            )
        except (CallTimeout, CallFailed) as exc:
            return ToolOutput(f"{name} {exc.message}", is_error=True)
        except ServerUnavailable as exc:
            return ToolOutput(
                f"{name} failed: {exc.message}. It will be restarted on next use.", is_error=True
            )
        text, media = result_parts(result)
        text, cut = cap_output(text, self.max_output_chars)
        failed = bool(getattr(result, "is_error", False))
        return ToolOutput(text, is_error=failed, truncated=cut, media=media)
