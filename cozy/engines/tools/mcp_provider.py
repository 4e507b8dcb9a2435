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
import time
from typing import Any

from cozy.core.types import ToolOutput, ToolSpec
from cozy.engines.base import EngineContext, EngineOptions, Health, ToolContext, ToolsEngine
from cozy.engines.tools.builtin import BuiltinFn, BuiltinTools
from cozy.engines.tools.content import result_text
from cozy.engines.tools.levels import resolve_level
from cozy.engines.tools.mcp_client import (
    CallFailed,
    CallTimeout,
    MCPServerConnection,
    ServerStatus,
    ServerUnavailable,
)
from cozy.engines.tools.mcp_config import import_claude_config, parse_servers
from cozy.engines.tools.sandbox import DEFAULT_MAX_OUTPUT_CHARS, cap_output, validate_arguments

__all__ = ["MCPTools", "ServerStatus", "import_claude_config"]


class MCPOptions(EngineOptions):
    servers: Any = None  # checked by mcp_config.parse_servers (its messages name the fix)
    mcpServers: Any = None  # Claude Desktop's spelling of `servers`
    timeout: float = 30.0
    startup_timeout: float = 30.0
    max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS
    schema_ttl: float = 600.0
    shutdown_timeout: float = 2.5
    builtin: bool = True
    eager: bool = False  # start every server when cozy opens, not on first use
    limits: dict[str, Any] | None = None  # defaults for every server's `limits`
    cwd: str | None = None  # default working directory of stdio servers


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
        self._conns: dict[str, MCPServerConnection] = {
            cfg.name: MCPServerConnection(cfg, schema_ttl=o.schema_ttl, grace=o.shutdown_timeout)
            for cfg in parse_servers(o.model_dump(exclude_none=True))
        }
        self._builtin: BuiltinTools | None = None
        if o.builtin:
            self._builtin = BuiltinTools(
                {"timeout": self.timeout, "max_output_chars": self.max_output_chars}, ctx
            )
        # per server: (tools list identity, generation) -> specs by qualified name
        self._specs: dict[str, tuple[int, int, dict[str, tuple[str, ToolSpec]]]] = {}

    # -- engine surface --------------------------------------------------------------

    def register_builtin(self, spec: ToolSpec, fn: BuiltinFn) -> None:
        """Contribute a built-in tool at runtime (needs `builtin: true`)."""
        if self._builtin is None:
            self._builtin = BuiltinTools({"timeout": self.timeout}, self.ctx)
        self._builtin.register(spec, fn)

    async def list_tools(self) -> list[ToolSpec]:
        out: list[ToolSpec] = []
        if self._builtin is not None:
            out.extend(await self._builtin.list_tools())
        conns = list(self._conns.values())
        results = await asyncio.gather(
            *(self._server_specs(c) for c in conns), return_exceptions=True
        )
        for result in results:
            if isinstance(result, dict):
                out.extend(spec for _raw, spec in result.values())
            elif isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result  # cancellation and friends are not "a server failed"
        return out

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
                row["last_error"] = row["last_error"] or "the server process exited"
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
        bad = [s for s in await self.servers_status() if s["state"] == "failed"]
        if not bad:
            return Health(ok=True, detail=f"{len(self._conns)} MCP servers configured")
        detail = "; ".join(f"{s['name']}: {s['last_error']}" for s in bad)
        return Health(ok=False, detail=detail, fix="run `cozy tools servers` and fix engines.yaml")

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

    # -- internals -----------------------------------------------------------------

    async def _server_specs(self, conn: MCPServerConnection) -> dict[str, tuple[str, ToolSpec]]:
        tools = await conn.list_tools()
        key = (id(tools), conn.generation)
        cached = self._specs.get(conn.cfg.name)
        if cached is not None and cached[:2] == key:
            return cached[2]
        specs: dict[str, tuple[str, ToolSpec]] = {}
        for tool in tools:
            qualified = f"{conn.cfg.name}.{tool.name}"
            specs[qualified] = (
                tool.name,
                ToolSpec(
                    name=qualified,
                    description=tool.description or getattr(tool, "title", None) or "",
                    parameters=tool.input_schema or {"type": "object"},
                    level=resolve_level(tool.name, tool.annotations, conn.cfg.levels),
                    server=conn.cfg.name,
                ),
            )
        self._specs[conn.cfg.name] = (key[0], key[1], specs)
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
            result = await conn.call(raw, arguments, timeout)
        except (CallTimeout, CallFailed) as exc:
            return ToolOutput(f"{name} {exc.message}", is_error=True)
        except ServerUnavailable as exc:
            return ToolOutput(
                f"{name} failed: {exc.message}. It will be restarted on next use.", is_error=True
            )
        text, cut = cap_output(result_text(result), self.max_output_chars)
        return ToolOutput(text, is_error=bool(getattr(result, "is_error", False)), truncated=cut)
