"""An MCP tools engine's servers by name, and what they offer beyond tools: prompts,
resources (read once, kept while subscribed), their logs, and the OAuth login step.

`MCPTools` owns one of these and answers the capability protocols (ServesPrompts,
ServesResources, KeepsServerLogs, LogsInToServers) through it; the connections are
the engine's own, so a server started for a tool call serves prompts too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from cozy.engines.tools import mcp_extras
from cozy.engines.tools.mcp_client import MCPServerConnection
from cozy.engines.tools.mcp_extras import PromptInfo, ResourceInfo, ResourceText
from cozy.engines.tools.mcp_logs import at_least, read_logs
from cozy.engines.tools.mcp_oauth import login as oauth_login


class MCPServers:
    def __init__(
        self, conns: dict[str, MCPServerConnection], timeout: float, log_dir: Path | None
    ) -> None:
        self.conns = conns  # the engine's dict: shared, never copied
        self.timeout = timeout  # per call, when the server sets none
        self.log_dir = log_dir

    def conn(self, server: str) -> MCPServerConnection:
        conn = self.conns.get(server)
        if conn is None:
            from cozy.core.errors import NotFoundError

            raise NotFoundError(
                f"no MCP server named '{server}'",
                hint=f"configured: {', '.join(sorted(self.conns)) or 'none'} (engines.yaml)",
            )
        return conn

    async def each(self, server: str | None, fn: Any) -> tuple[list[Any], list[str]]:
        conns = (
            [self.conn(server)]
            if server
            else [c for c in self.conns.values() if not c.cfg.disabled]
        )

        async def one(conn: MCPServerConnection) -> list[Any]:
            session = await conn.session()
            return list(await fn(conn.cfg.name, session, conn.cfg.timeout or self.timeout))

        results = await asyncio.gather(*(one(c) for c in conns), return_exceptions=True)
        out: list[Any] = []
        problems: list[str] = []
        for conn, result in zip(conns, results, strict=True):
            if isinstance(result, list):
                out.extend(result)
            elif isinstance(result, Exception):
                problems.append(f"'{conn.cfg.name}' unavailable: {result}")
            else:
                raise result
        return out, problems

    async def list_prompts(self, server: str | None = None) -> tuple[list[PromptInfo], list[str]]:
        return await self.each(server, mcp_extras.list_prompts)

    async def get_prompt(self, qualified: str, arguments: dict[str, str]) -> list[dict[str, str]]:
        server, _, name = qualified.partition(".")
        conn = self.conn(server)
        session = await conn.session()
        return await mcp_extras.get_prompt(
            server, session, name, arguments, conn.cfg.timeout or self.timeout
        )

    async def list_resources(
        self, server: str | None = None
    ) -> tuple[list[ResourceInfo], list[str]]:
        return await self.each(server, mcp_extras.list_resources)

    async def read_resource(self, server: str, uri: str) -> ResourceText:
        """Read a resource; on a server that offers subscriptions, subscribe and keep the
        text until the server says it changed (notifications/resources/updated)."""
        conn = self.conn(server)
        session = await conn.session()
        cached = conn.resource_cache.get(uri)
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        timeout = conn.cfg.timeout or self.timeout
        text = await mcp_extras.read_resource(server, session, uri, timeout)
        if uri in conn.subscribed or await mcp_extras.subscribe(session, uri, timeout):
            conn.subscribed.add(uri)
            conn.resource_cache[uri] = text
        return text

    async def login(
        self, server: str, show_url: Callable[[str], Awaitable[None]]
    ) -> dict[str, Any]:
        """`cozy tools login SERVER`: the browser step of OAuth, tokens stored."""
        return await oauth_login(self.conn(server), show_url)

    def resource_updates(self, server: str) -> list[tuple[float, str]]:
        """(time, uri) of the server's recent notifications/resources/updated."""
        return list(self.conn(server).resource_updates)

    def server_logs(
        self, server: str | None = None, *, limit: int = 50, level: str = "debug"
    ) -> list[dict[str, Any]]:
        """What the servers logged (notifications/message), oldest first: from the log
        files under COZY_HOME/logs/mcp, or this process's rings without a home."""
        names = [self.conn(server).cfg.name] if server else list(self.conns)
        if self.log_dir is not None:
            return read_logs(self.log_dir, names, limit=limit, level=level)
        rows = [
            e.to_dict()
            for n in names
            for e in self.conns[n].log.entries
            if at_least(e.level, level)
        ]
        rows.sort(key=lambda r: float(r["at"]))
        return rows[-limit:] if limit > 0 else rows
