"""Shared pieces of the MCP client: status record, errors, process tracking."""

from __future__ import annotations

import atexit
import os
import signal
import threading
from dataclasses import asdict, dataclass
from typing import Any

from cozy.core.errors import ToolError
from cozy.engines.tools.sandbox import kill_group

_LIVE_PIDS: set[int] = set()
_atexit_registered = False


def _kill_live_at_exit() -> None:
    for pid in list(_LIVE_PIDS):
        kill_group(pid)


def _on_signal(signum: int, frame: Any) -> None:
    """SIGTERM/SIGHUP: kill the servers' process groups (npx/uvx grandchildren too),
    then die of the signal as we would have (the default action skips atexit)."""
    _kill_live_at_exit()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_signal_handlers() -> None:
    """Only where the default action would apply: a face that handles these signals
    itself (uvicorn, Textual) shuts down through close(), which stops the servers."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) == signal.SIG_DFL:
            signal.signal(signum, _on_signal)


def track_pid(pid: int) -> None:
    global _atexit_registered
    if not _atexit_registered:
        atexit.register(_kill_live_at_exit)
        _install_signal_handlers()
        _atexit_registered = True
    _LIVE_PIDS.add(pid)


class ServerUnavailable(ToolError):
    """The server could not be started or died; it is restarted on next use."""


class CallTimeout(ToolError):
    pass


class CallFailed(ToolError):
    """The server answered the call with a protocol error (unknown tool, bad params)."""


@dataclass(slots=True)
class ServerStatus:
    name: str
    transport: str
    target: str = ""
    state: str = "idle"  # idle | starting | running | failed | stopped
    pid: int | None = None
    tool_count: int = 0
    last_error: str | None = None
    start_ms: float | None = None
    restarts: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def describe(exc: BaseException) -> str:
    leaf = _leaf(exc)
    text = str(leaf).strip() or type(leaf).__name__
    if getattr(leaf, "says_it_all", False):
        return text
    return text if type(leaf).__name__ in text else f"{type(leaf).__name__}: {text}"


def preflight(command: str, cwd: str | None, path: str | None) -> None:
    """Fail fast, with a clear message, on a missing command or working directory."""
    import shutil

    if cwd and not os.path.isdir(cwd):
        raise FileNotFoundError(f"working directory {cwd} does not exist")
    if os.sep not in command and shutil.which(command, path=path) is None:
        raise FileNotFoundError(f"command '{command}' not found on PATH")


def ended(record: str | None, server: str) -> str:
    """The sandbox launcher's exit record as words for the model and the user.

    A CPU-limit kill says which limit and where to raise it; other deaths name the
    signal or the exit status."""
    if not record:
        return "the server process died"
    words = record.split()
    fields = dict(zip(words[::2], words[1::2], strict=False))
    cpu = fields.get("cpu", "?")
    if "cpu_limit" in fields:
        limit = fields["cpu_limit"]
        return (
            f"the server process was killed for exceeding its CPU limit ({cpu} s of CPU used, "
            f"limit {limit} s; raise servers.{server}.limits.cpu_seconds in engines.yaml "
            "if it needs more)"
        )
    if "signal" in fields:
        return f"the server process was killed by {fields['signal']}"
    if fields.get("exit") not in (None, "0"):
        return f"the server process exited with status {fields['exit']}"
    return "the server process exited"


def untrack_pid(pid: int) -> None:
    _LIVE_PIDS.discard(pid)


def preflight_config(cfg: Any) -> None:
    """`preflight` for a stdio server's config, with the environment it would get."""
    from cozy.engines.tools.sandbox import clean_env

    env = clean_env(cfg.env, cfg.env_passthrough)
    preflight(cfg.command, cfg.cwd, env.get("PATH"))


def hint_for(cfg: Any) -> str:
    """What a user can do about a server that is unavailable."""
    if cfg.oauth:
        return (
            f"log in with `cozy tools login {cfg.name}` if it asks you to; otherwise "
            f"check that {cfg.url} is reachable (`cozy tools servers`)"
        )
    if cfg.url:
        return f"check that {cfg.url} is reachable; `cozy tools servers` shows the status"
    return "check the command and args in engines.yaml; `cozy tools servers` shows the status"
