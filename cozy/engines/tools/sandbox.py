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
    if not schema:
        return None
    import jsonschema

    try:
        validator = _validator(schema)
        errors = sorted(validator.iter_errors(arguments), key=lambda e: list(e.path))
    except jsonschema.SchemaError:
        return None  # the server's schema is broken; let the server judge
    if not errors:
        return None
    parts = []
    for err in errors[:5]:
        where = "/".join(str(p) for p in err.absolute_path) or "(root)"
        parts.append(f"at {where}: {err.message}")
    more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
    props = schema.get("properties")
    expected = ""
    if isinstance(props, Mapping):
        required = schema.get("required") or []
        listed = ", ".join(f"{k}{'*' if k in required else ''}" for k in props)
        expected = f"; expected fields: {listed} (* = required)"
    return "invalid arguments: " + "; ".join(parts) + more + expected


_VALIDATORS: dict[int, tuple[Mapping[str, Any], Any]] = {}


def _validator(schema: Mapping[str, Any]) -> Any:
    """Compiled validator per schema object (tool schemas are cached, so ids are stable)."""
    hit = _VALIDATORS.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    import jsonschema

    validator = jsonschema.validators.validator_for(schema)(schema)
    if len(_VALIDATORS) > 1024:
        _VALIDATORS.clear()
    _VALIDATORS[id(schema)] = (schema, validator)
    return validator


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
