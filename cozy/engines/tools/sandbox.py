"""Sandbox helpers shared by the tools providers.

Clean environment and launcher command for stdio servers, argument validation
against a tool's JSON schema, output size cap, and process-tree checks.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from cozy.engines.toolargs import check_arguments

ENV_ALLOWLIST: tuple[str, ...] = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TERM",
    "TMPDIR",
    "TZ",
)
DEFAULT_MAX_OUTPUT_CHARS = 20_000
DEFAULT_CPU_SECONDS = 3600
DEFAULT_MEMORY_MB = 8192

_LAUNCHER = Path(__file__).with_name("_limits.py")


def expand_path(value: str) -> str:
    """Expand a leading `~` (the config loader already expanded `${VAR}`)."""
    return os.path.expanduser(value) if value.startswith("~") else value


def clean_env(
    extra: Mapping[str, str] | None = None, passthrough: Iterable[str] = ()
) -> dict[str, str]:
    """Only allowlisted variables from our environment, plus what the config sets."""
    names = set(ENV_ALLOWLIST) | set(passthrough)
    env = {k: v for k, v in os.environ.items() if k in names and not v.startswith("()")}
    env.update({str(k): str(v) for k, v in (extra or {}).items()})
    return env


def launcher_argv(
    command: str,
    args: list[str],
    *,
    env: Mapping[str, str],
    cwd: str | None,
    cpu_seconds: int,
    memory_mb: int,
    pidfile: str,
) -> tuple[str, list[str]]:
    """The (command, args) that run `command args` under the sandbox launcher."""
    argv = [
        "-I",
        "-S",
        str(_LAUNCHER),
        "--cpu",
        str(max(cpu_seconds, 0)),
        "--mem",
        str(max(memory_mb, 0)),
        "--keep",
        ",".join(sorted(env)),
        "--pidfile",
        pidfile,
    ]
    if cwd:
        argv += ["--cwd", cwd]
    return sys.executable, [*argv, "--", command, *args]


def validate_arguments(schema: Mapping[str, Any] | None, arguments: Any) -> str | None:
    """None when `arguments` fit `schema`, else a message the model can act on."""
    if not isinstance(arguments, dict):
        return f"arguments must be a JSON object, got {type(arguments).__name__}"
    problem = check_arguments(schema, arguments)
    return f"invalid arguments: {problem}" if problem else None


def cap_output(text: str, max_chars: int) -> tuple[str, bool]:
    """Truncate to `max_chars` with a note saying how much was cut."""
    if max_chars <= 0 or len(text) <= max_chars:
        return text, False
    note = f"\n[output truncated: showing {max_chars} of {len(text)} characters]"
    return text[:max_chars] + note, True


def to_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


def pid_alive(pid: int | None) -> bool:
    """True when `pid` runs and is not a zombie."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        with contextlib.suppress(OSError, IndexError):
            return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def kill_group(pid: int | None) -> None:
    """SIGKILL the process group led by `pid` (stdio servers start in their own session).

    Safe after the leader exited: the group id stays reserved while any member lives,
    and killpg on an empty group is a no-op.
    """
    if not pid or sys.platform == "win32":
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
