"""How one MCP server is reached: the SDK transport for its config (streamable HTTP,
SSE, or a sandboxed stdio process) and, for stdio, what the process leaves behind:
its pid file (process group and server pid), its exit record and its stderr ring.

The connection (mcp_client) owns the lifecycle; this module knows the transports.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from cozy.engines.tools.mcp_common import preflight
from cozy.engines.tools.mcp_config import ServerConfig
from cozy.engines.tools.mcp_stderr import StderrRing
from cozy.engines.tools.sandbox import clean_env, launcher_argv

# What a server printed on stdout that is not JSON-RPC. The SDK logs each such line
# with a traceback; the filter below keeps the line for the connection whose reader
# logged it (the reader task inherits the runner task's context) and drops the record,
# so a user sees "is this an MCP server?" once instead of a pydantic traceback.
_NOT_MCP: ContextVar[list[str] | None] = ContextVar("cozy_mcp_not_mcp", default=None)


class _NotMCPFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if "parse JSONRPC" not in str(record.msg):
            return True
        sink = _NOT_MCP.get()
        exc = record.exc_info[1] if record.exc_info else None
        errors = getattr(exc, "errors", None)
        if sink is not None and len(sink) < 3 and callable(errors):
            with contextlib.suppress(Exception):
                sink.append(str(errors()[0].get("input", ""))[:120])
        return False


logging.getLogger("mcp.client.stdio").addFilter(_NotMCPFilter())


class ServerProcess:
    """One server's transport and, for stdio, its process's traces."""

    def __init__(self, cfg: ServerConfig, auth_dir: Path | None = None) -> None:
        self.cfg = cfg
        self.auth_dir = auth_dir  # where OAuth tokens are kept (mcp_oauth)
        # during `cozy tools login`: the loopback redirect and how to show the URL
        self.login: tuple[Any, Callable[[str], Awaitable[None]]] | None = None
        self.stderr: StderrRing | None = None
        self.pidfile: str | None = None
        self.not_mcp: list[str] = []  # non-JSON-RPC lines the server printed on stdout

    def token_storage(self) -> Any:
        """The server's OAuth token file (mcp_oauth.FileTokenStorage)."""
        from cozy.engines.tools.mcp_oauth import FileTokenStorage

        if self.auth_dir is None:
            raise ValueError(
                f"MCP server '{self.cfg.name}' uses OAuth, which needs a COZY_HOME to keep "
                "its tokens in"
            )
        return FileTokenStorage(self.auth_dir / f"{self.cfg.name}.json")

    def offline_problem(self) -> str | None:
        """Why the server cannot start, found without starting it (for `cozy doctor`):
        a stdio command or directory that is missing, an OAuth server not logged in."""
        if self.cfg.transport == "stdio":
            from cozy.engines.tools.mcp_common import preflight_config

            try:
                preflight_config(self.cfg)
            except FileNotFoundError as exc:
                return str(exc)
            return None
        if self.cfg.oauth and self.auth_dir is not None and not self.token_storage().has_tokens():
            return f"not logged in (OAuth): run `cozy tools login {self.cfg.name}`"
        return None

    def _auth(self) -> Any:
        if not self.cfg.oauth:
            return None
        from cozy.engines.tools.mcp_oauth import provider

        login, show = self.login if self.login is not None else (None, None)
        return provider(
            self.cfg.name,
            self.cfg.url,
            self.token_storage(),
            scope=self.cfg.oauth_scope,
            login=login,
            show_url=show,
        )

    def watch_stdout(self) -> None:
        """Collect, for this task and the SDK tasks it starts, the lines on stdout that
        are not JSON-RPC (call in the runner task, before the transport opens)."""
        self.not_mcp = []
        _NOT_MCP.set(self.not_mcp)

    def transport(self) -> contextlib.AbstractAsyncContextManager[Any]:
        cfg = self.cfg
        if cfg.transport == "sse":
            from mcp.client.sse import sse_client

            return sse_client(
                cfg.url,
                headers=cfg.headers or None,
                timeout=cfg.startup_timeout,
                auth=self._auth(),
            )
        if cfg.transport == "streamable-http":
            from mcp.client.streamable_http import streamable_http_client
            from mcp.shared._httpx_utils import create_mcp_http_client

            client = create_mcp_http_client(headers=cfg.headers or None, auth=self._auth())
            return streamable_http_client(cfg.url, http_client=client)
        return self._stdio()

    @contextlib.asynccontextmanager
    async def _stdio(self) -> Any:
        from mcp.client.stdio import StdioServerParameters, stdio_client

        cfg = self.cfg
        env = clean_env(cfg.env, cfg.env_passthrough)
        preflight(cfg.command, cfg.cwd, env.get("PATH"))
        fd, self.pidfile = tempfile.mkstemp(prefix=f"cozy-mcp-{cfg.name}-", suffix=".pid")
        os.close(fd)
        command, args = launcher_argv(
            cfg.command,
            cfg.args,
            env=env,
            cwd=cfg.cwd,
            cpu_seconds=cfg.cpu_seconds,
            memory_mb=cfg.memory_mb,
            pidfile=self.pidfile,
        )
        self.stderr = ring = StderrRing()
        params = StdioServerParameters(command=command, args=args, env=env, cwd=cfg.cwd)
        assert ring.writer is not None
        async with stdio_client(params, errlog=ring.writer) as streams:  # type: ignore[arg-type]
            ring.spawned()
            yield streams

    def read_pids(self) -> tuple[int, int] | None:
        """(process group = the sandbox launcher, the server itself)."""
        if not self.pidfile:
            return None
        with contextlib.suppress(OSError, ValueError), open(self.pidfile) as fh:
            group, server = (int(p) for p in fh.read().split())
            return group, server
        return None

    def exit_record(self) -> str | None:
        """How the server process ended, as the launcher wrote it ("signal SIGXCPU cpu
        2.01 cpu_limit 2", "exit 3 cpu 0.10"), or None while unknown."""
        if not self.pidfile:
            return None
        with contextlib.suppress(OSError), open(self.pidfile + ".exit") as fh:
            return fh.read().strip() or None
        return None

    def stderr_tail(self, limit: int = 600) -> str:
        return self.stderr.tail(limit) if self.stderr is not None else ""

    def stderr_text(self) -> str:
        """What the server last wrote to stderr (at most the ring's 64 KB)."""
        return self.stderr.text() if self.stderr is not None else ""

    def stderr_total(self) -> int:
        return self.stderr.total if self.stderr is not None else 0

    def close(self) -> None:
        """Drop the stderr ring and the pid files (the process is gone by now)."""
        if self.stderr is not None:
            self.stderr.close()
            self.stderr = None
        if self.pidfile:
            for path in (self.pidfile, self.pidfile + ".exit"):
                with contextlib.suppress(OSError):
                    os.unlink(path)
            self.pidfile = None
