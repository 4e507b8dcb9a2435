"""One MCP server connection: lazy start, status, schema cache, calls, bounded stop.

The SDK's transports and ClientSession are async context managers bound to the
task that enters them, so each server lives in its own runner task that enters
them, signals ready, and waits for a stop event. Callers in any task use the
session; a caller being cancelled never tears the server down half-way.

How the server is reached (transports, the stdio process's pid file, exit record and
stderr) is in mcp_transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cozy.engines.tools.mcp_common import (
    CallFailed,
    CallTimeout,
    ServerStatus,
    ServerUnavailable,
    describe,
    ended,
    hint_for,
    track_pid,
    untrack_pid,
)
from cozy.engines.tools.mcp_config import ServerConfig
from cozy.engines.tools.mcp_health import death_reason, probe_soon
from cozy.engines.tools.mcp_logs import ServerLog, set_log_level
from cozy.engines.tools.mcp_requests import ServerRequests
from cozy.engines.tools.mcp_transport import ServerProcess
from cozy.engines.tools.sandbox import kill_group, pid_alive

MAX_BACKOFF = 300.0

__all__ = ["CallFailed", "CallTimeout", "MCPServerConnection", "ServerStatus", "ServerUnavailable"]


class MCPServerConnection:
    def __init__(
        self,
        cfg: ServerConfig,
        *,
        schema_ttl: float = 600.0,
        grace: float = 2.5,
        log_dir: Path | None = None,
        auth_dir: Path | None = None,
    ) -> None:
        self.cfg = cfg
        self.log = ServerLog(cfg.name, log_dir)
        # resources read while subscribed, by URI: dropped when the server says the
        # resource changed (notifications/resources/updated) or the session restarts
        self.resource_cache: dict[str, Any] = {}
        self.subscribed: set[str] = set()
        self.resource_updates: deque[tuple[float, str]] = deque(maxlen=100)
        self.schema_ttl = schema_ttl
        self.grace = grace
        target = cfg.url if cfg.url else " ".join([cfg.command, *cfg.args])
        self.status = ServerStatus(name=cfg.name, transport=cfg.transport, target=target)
        if cfg.disabled:
            self.status.state = "disabled"
        elif cfg.error:
            self.status.state, self.status.last_error = "failed", cfg.error
        self._session: Any = None
        self.requests = ServerRequests(cfg.name, cfg.roots)
        self._runner: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._stop: asyncio.Event | None = None
        self._lock: asyncio.Lock | None = None
        self._dead: str | None = None
        # a server that did not answer a ping is hung (SIGSTOPped, wedged): its stop is
        # a kill, since a graceful shutdown would only wait out the grace period
        self._hung = False
        self._probing: asyncio.Task[None] | None = None
        self.process = ServerProcess(cfg, auth_dir)
        self._pgid: int | None = None  # the sandbox launcher's process group
        self._tools: list[Any] | None = None
        self._tools_at = 0.0
        self.generation = 0
        self.retry_backoff = 5.0  # doubles per failed start, up to MAX_BACKOFF
        self._failures = 0
        self._failed_at = 0.0

    # -- lifecycle ---------------------------------------------------------------

    def _healthy(self) -> bool:
        if self._session is None or self._dead or self._runner is None or self._runner.done():
            return False
        return self.status.pid is None or pid_alive(self.status.pid)

    async def session(self) -> Any:
        """The live ClientSession, starting or restarting the server as needed."""
        if self.cfg.disabled:
            raise ServerUnavailable(
                f"MCP server '{self.cfg.name}' is disabled in engines.yaml",
                hint=f"remove `disabled: true` from servers.{self.cfg.name} to use it",
            )
        if self.cfg.error:
            raise ServerUnavailable(self.cfg.error, hint=self._hint())
        if self._healthy():
            return self._session
        if self._failed_at and time.monotonic() - self._failed_at < self._backoff():
            raise ServerUnavailable(self.status.last_error or "unavailable", hint=self._hint())
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._healthy():
                return self._session
            starting = self._ready is not None and not self._ready.done()
            if self._runner is not None and not starting:
                was_dead = self._dead or f"MCP server '{self.cfg.name}' " + ended(
                    self.exit_record(), self.cfg.name
                )
                await self._teardown()
                self.status.restarts += 1
                self.status.last_error = was_dead
            if self._runner is None:
                self._launch()
            await self._await_ready()
            return self._session

    def _launch(self) -> None:
        self._dead = None
        self._hung = False
        self._tools = None
        self.resource_cache.clear()
        self.subscribed.clear()
        self.status.state, self.status.pid = "starting", None
        self._stop = asyncio.Event()
        self._ready = asyncio.get_running_loop().create_future()
        self._ready.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._started = time.perf_counter()
        self._runner = asyncio.create_task(
            self._run(self._ready, self._stop), name=f"mcp:{self.cfg.name}"
        )

    async def _await_ready(self) -> None:
        assert self._ready is not None
        remaining = self.cfg.startup_timeout - (time.perf_counter() - self._started)
        try:
            async with asyncio.timeout(max(remaining, 0.01)):
                await asyncio.shield(self._ready)
        except TimeoutError:
            msg = f"did not finish the MCP handshake within {self.cfg.startup_timeout:g} s"
            await self._fail(msg)
        except (asyncio.CancelledError, KeyboardInterrupt):
            raise  # the runner keeps starting; the next caller picks it up
        except BaseException as exc:
            await self._fail(f"failed to start: {describe(exc)}")
        else:
            self._failed_at, self._failures = 0.0, 0
            self.status.state = "running"
            self.status.start_ms = round((time.perf_counter() - self._started) * 1000, 1)
            self.status.last_error = self.status.last_error if self.status.restarts else None

    async def _fail(self, msg: str) -> None:
        tail = self.process.stderr_tail()
        not_mcp = self.process.not_mcp
        await self._teardown()
        full = f"MCP server '{self.cfg.name}' {msg}"
        if not_mcp:
            full += (
                f"; it printed non-MCP output on stdout ({not_mcp[0]!r}): "
                f"is `{self.cfg.command}` an MCP server (does it need an argument such as "
                "`stdio` or `mcp`)?"
            )
        if tail:
            full += f"; its stderr ends with: {tail}"
        self.status.state, self.status.last_error = "failed", full
        self._failed_at = time.monotonic()
        self._failures += 1
        raise ServerUnavailable(full, hint=self._hint())

    def _backoff(self) -> float:
        """A server that keeps failing is retried less and less often (a hung one
        would otherwise cost its start-up timeout on every turn)."""
        return min(self.retry_backoff * 2.0 ** max(self._failures - 1, 0), MAX_BACKOFF)

    def _hint(self) -> str:
        return hint_for(self.cfg)

    def exit_record(self) -> str | None:
        return self.process.exit_record()

    async def _run(self, ready: asyncio.Future[None], stop: asyncio.Event) -> None:
        from mcp import ClientSession
        from mcp_types import Implementation

        info = Implementation(name="cozy", version="0.1.0")
        self.process.watch_stdout()
        try:
            async with contextlib.AsyncExitStack() as stack:
                read, write = await stack.enter_async_context(self.process.transport())
                req = self.requests
                session = await stack.enter_async_context(
                    ClientSession(
                        read,
                        write,
                        message_handler=self._on_message,
                        client_info=info,
                        sampling_callback=req.sampling,
                        elicitation_callback=req.elicitation,
                        list_roots_callback=req.list_roots,
                        logging_callback=self._on_log,
                    )
                )
                await session.initialize()
                await set_log_level(session, self.cfg.log_level, self.cfg.timeout, self.log)
                pids = self.process.read_pids()
                if pids:
                    self._pgid, self.status.pid = pids
                    track_pid(self._pgid)
                self._session = session
                self.generation += 1
                ready.set_result(None)
                await stop.wait()
        except BaseException as exc:
            if not ready.done():
                if isinstance(exc, asyncio.CancelledError):
                    ready.cancel()
                else:
                    ready.set_exception(exc)
            elif not stop.is_set():
                self.mark_dead(f"connection lost: {describe(exc)}")
            if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
                raise
        finally:
            self._session = None

    async def _on_message(self, message: Any) -> None:
        method = getattr(message, "method", None)
        if method == "notifications/tools/list_changed":
            self._tools = None
        elif method == "notifications/resources/updated":
            uri = str(getattr(getattr(message, "params", None), "uri", ""))
            self.resource_cache.pop(uri, None)
            self.resource_updates.append((time.time(), uri))

    async def _on_log(self, params: Any) -> None:
        entry = self.log.add(str(params.level), params.logger, params.data)
        on_log = self.requests.active.get("on_log")  # the turn whose call is running
        if callable(on_log):
            with contextlib.suppress(Exception):
                on_log(entry.to_dict())

    def mark_dead(self, reason: str) -> None:
        self._dead = reason
        self.status.state, self.status.last_error = (
            "failed",
            f"MCP server '{self.cfg.name}' {reason}",
        )

    def stderr_text(self) -> str:
        """What the server last wrote to stderr (at most the ring's 64 KB)."""
        return self.process.stderr_text()

    async def _teardown(self) -> None:
        """Stop the runner: graceful (SDK shutdown) within `grace`, then SIGKILL."""
        runner, pid = self._runner, self._pgid
        probing, self._probing = self._probing, None
        if probing is not None and probing is not asyncio.current_task():
            probing.cancel()
        if runner is not None:
            if self._stop is not None:
                self._stop.set()
            if self._ready is not None and not self._ready.done():
                runner.cancel()
            grace = 0.0 if self._hung else self.grace
            _done, pending = await asyncio.wait({runner}, timeout=grace)
            if pending:
                kill_group(pid)
                runner.cancel()
                await asyncio.wait({runner}, timeout=2.0)
        kill_group(pid)  # descendants left in the group
        if pid:
            untrack_pid(pid)
        self._runner = self._session = self._ready = None
        self.status.pid = self._pgid = None
        self.process.close()

    async def stop(self) -> None:
        await self._teardown()
        if not self.cfg.error and not self.cfg.disabled:
            self.status.state = "stopped"

    def kill_now(self) -> None:
        """Synchronous last resort (caller cancelled during close)."""
        kill_group(self._pgid)
        if self._runner is not None and not self._runner.done():
            if self._stop is not None:
                self._stop.set()
            self._runner.cancel()

    # -- MCP requests --------------------------------------------------------------

    def cached_tools(self) -> list[Any] | None:
        if self._tools is not None and time.monotonic() - self._tools_at < self.schema_ttl:
            return self._tools
        return None

    async def list_tools(self) -> list[Any]:
        session = await self.session()
        cached = self.cached_tools()
        if cached is not None:
            return cached
        from mcp_types import PaginatedRequestParams

        tools: list[Any] = []
        cursor: str | None = None
        try:
            async with asyncio.timeout(self.cfg.timeout or None):
                while True:
                    params = PaginatedRequestParams(cursor=cursor) if cursor else None
                    result = await session.list_tools(params=params)
                    tools.extend(result.tools)
                    cursor = result.next_cursor
                    if not cursor:
                        break
        except TimeoutError:
            self.mark_dead(f"did not list its tools within {self.cfg.timeout:g} s")
            raise ServerUnavailable(self.status.last_error or "", hint=self._hint()) from None
        except Exception as exc:
            self.mark_dead(f"failed to list tools: {describe(exc)}")
            raise ServerUnavailable(self.status.last_error or "", hint=self._hint()) from exc
        self._tools, self._tools_at = tools, time.monotonic()
        self.status.tool_count = len(tools)
        return tools

    async def call(
        self,
        tool: str,
        arguments: dict[str, Any],
        timeout: float,  # noqa: ASYNC109
        on_progress: Callable[[float | None, float | None, str | None], None] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Any:
        """Call a tool; `on_progress` gets the server's progress notifications."""
        session = await self.session()
        # sampling / elicitation the server asks for during this call are answered by
        # the turn that made it, and what it logs meanwhile is shown there
        active = self.requests.active = extra or {}
        progress = None
        if on_progress is not None:

            async def progress(done: float, total: float | None, message: str | None) -> None:
                on_progress(done, total, message)

        from mcp.shared.exceptions import MCPError
        from mcp_types import CONNECTION_CLOSED

        try:
            async with asyncio.timeout(timeout if timeout > 0 else None) as deadline:
                self.requests.deadline = deadline  # paused while the user answers a form
                return await session.call_tool(tool, arguments, progress_callback=progress)
        except TimeoutError:
            # the error is due now, within the caller's timeout: whether the server is
            # hung (then restarted on next use) is found out in the background
            probe_soon(self)
            raise CallTimeout(f"timed out after {timeout:g} s; the call was cancelled") from None
        except MCPError as exc:
            if exc.code != CONNECTION_CLOSED:
                raise CallFailed(f"the server rejected the call: {exc.message}") from exc
            self.mark_dead(await death_reason(self))
            raise ServerUnavailable(self.status.last_error or "", hint=self._hint()) from exc
        except Exception as exc:
            self.mark_dead(f"failed during the call: {describe(exc)}")
            raise ServerUnavailable(self.status.last_error or "", hint=self._hint()) from exc
        finally:
            if self.requests.active is active:  # a later call's turn keeps its own
                self.requests.active = {}
