"""The mcp tools provider's options: its `servers:` section (Claude Desktop's `mcpServers`
shape) and the defaults every server takes."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cozy.core.errors import ConfigError
from cozy.engines.base import EngineOptions
from cozy.engines.tools.levels import LEVELS, is_level
from cozy.engines.tools.mcp_logs import LEVELS as LOG_LEVELS
from cozy.engines.tools.mcp_logs import is_log_level
from cozy.engines.tools.sandbox import (
    DEFAULT_CPU_SECONDS,
    DEFAULT_MAX_OUTPUT_CHARS,
    DEFAULT_MEMORY_MB,
    expand_path,
)

Transport = Literal["stdio", "streamable-http", "sse"]
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
# Tool names are "<server>.<tool>"; these prefixes belong to cozy's own tools, so an MCP
# server may not take them (its tools would mix with, or shadow, the built-ins).
RESERVED = frozenset({"builtin", "memory", "knowledge", "cozy", "client"})
_UNSET = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


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
    log_level: str | None = None  # logging/setLevel for every server (default info)


@dataclass(slots=True)
class ServerConfig:
    name: str
    transport: Transport = "stdio"
    command: str = ""
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    env_passthrough: list[str] = field(default_factory=list)
    cwd: str | None = None
    url: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    levels: dict[str, str] = field(default_factory=dict)
    timeout: float = 30.0
    startup_timeout: float = 60.0
    cpu_seconds: int = DEFAULT_CPU_SECONDS
    memory_mb: int = DEFAULT_MEMORY_MB
    trust_annotations: bool = False  # believe the server's readOnlyHint over its other hints
    roots: list[str] = field(default_factory=list)  # directories announced as MCP roots
    log_level: str = "info"  # logging/setLevel sent to servers that log
    oauth: bool = False  # HTTP servers: OAuth 2.1 (`cozy tools login NAME`, mcp_oauth.py)
    oauth_scope: str | None = None
    disabled: bool = False
    error: str | None = None  # set when the entry is unusable; the server is reported, not run


def _oauth(server: dict[str, Any]) -> tuple[bool, str | None]:
    """`oauth: true`, or `oauth: {scope: "a b"}`, on a server with a `url`."""
    raw = server.get("oauth")
    if raw is None or raw is False:
        return False, None
    if not server.get("url"):
        raise ValueError("`oauth` is for servers with a `url`; a stdio server has none")
    if raw is True:
        return True, None
    if isinstance(raw, dict) and set(raw) <= {"scope"}:
        scope = raw.get("scope")
        return True, str(scope) if scope else None
    raise ValueError('`oauth` must be true or {scope: "..."}')


def _num(raw: Any, key: str, default: float) -> float:
    value = raw.get(key, default)
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"'{key}' must be a number, got {value!r}")
    return float(value)


def parse_server(name: str, raw: Any, defaults: MCPOptions | None = None) -> ServerConfig:
    """One entry; problems end up in `.error` so the other servers still run."""
    cfg = ServerConfig(name=name)
    d = defaults if defaults is not None else MCPOptions()
    try:
        if not _NAME.match(name):
            raise ValueError("server names may use only letters, digits, '_' and '-'")
        if name.lower() in RESERVED:
            raise ValueError(
                f"'{name}' is reserved for cozy's built-in tools; rename the server "
                f"(e.g. '{name}-mcp') — its tools are then '{name}-mcp.<tool>'"
            )
        if not isinstance(raw, dict):
            raise ValueError("each server must be a mapping with `command` or `url`")
        if raw.get("disabled"):
            cfg.disabled = True
            return cfg
        cfg.trust_annotations = bool(raw.get("trust_annotations", False))
        log_level = raw.get("log_level", d.log_level or "info")
        if not is_log_level(log_level):
            raise ValueError(f"log_level {log_level!r} is not one of {', '.join(LOG_LEVELS)}")
        cfg.log_level = str(log_level)
        cfg.timeout = _num(raw, "timeout", d.timeout)
        cfg.startup_timeout = _num(raw, "startup_timeout", d.startup_timeout)
        limits = {**(d.limits or {}), **(raw.get("limits") or {})}
        cfg.cpu_seconds = int(_num(limits, "cpu_seconds", DEFAULT_CPU_SECONDS))
        cfg.memory_mb = int(_num(limits, "memory_mb", DEFAULT_MEMORY_MB))
        levels = raw.get("levels") or {}
        if not isinstance(levels, dict):
            raise ValueError("`levels` must map tool names to a level")
        for tool, level in levels.items():
            if not is_level(level):
                raise ValueError(f"levels.{tool}: {level!r} is not one of {', '.join(LEVELS)}")
        cfg.levels = {str(k): str(v) for k, v in levels.items()}
        cfg.oauth, cfg.oauth_scope = _oauth(raw)
        if raw.get("url"):
            cfg.url = str(raw["url"])
            transport = str(raw.get("transport") or raw.get("type") or "streamable-http")
            transport = {"http": "streamable-http", "streamable_http": "streamable-http"}.get(
                transport, transport
            )
            if transport not in ("streamable-http", "sse"):
                raise ValueError(f"transport {transport!r} must be 'streamable-http' or 'sse'")
            cfg.transport = transport  # type: ignore[assignment]
            cfg.headers = {str(k): str(v) for k, v in (raw.get("headers") or {}).items()}
            for key, value in cfg.headers.items():
                _check_header(key, value)
        elif raw.get("command"):
            cfg.command = expand_path(str(raw["command"]))
            args = raw.get("args") or []
            if not isinstance(args, list):
                raise ValueError("`args` must be a list of strings")
            cfg.args = [expand_path(str(a)) for a in args]
            cfg.env = {str(k): str(v) for k, v in (raw.get("env") or {}).items()}
            cfg.env_passthrough = [str(v) for v in raw.get("env_passthrough") or []]
            cwd = raw.get("cwd") or d.cwd
            cfg.cwd = expand_path(str(cwd)) if cwd else str(Path.home())
            cfg.roots = [cfg.cwd]
        else:
            raise ValueError("needs `command` (stdio) or `url` (streamable-http / sse)")
        cfg.roots = _roots(raw.get("roots"), cfg.roots)
    except ValueError as exc:
        cfg.error = f"bad config for MCP server '{name}': {exc}"
    return cfg


def _roots(raw: Any, default: list[str]) -> list[str]:
    if raw is None:
        return default
    if not isinstance(raw, list):
        raise ValueError("`roots` must be a list of directories")
    return [str(Path(expand_path(str(r))).resolve()) for r in raw]


def _check_header(key: str, value: str) -> None:
    """An unset ${VAR} becomes "" when engines.yaml is read: catch the usual results."""
    unset = _UNSET.search(value)
    if unset:
        var = unset.group(1)
        raise ValueError(f"header {key} uses ${{{var}}} but {var} is not set; export it first")
    words = value.split()
    if not words or (len(words) == 1 and words[0].lower() in ("bearer", "basic", "token")):
        raise ValueError(
            f"header {key} is {value!r} — empty after ${{VAR}} expansion, so a variable it "
            "uses is probably not set; export it before starting cozy"
        )


def parse_servers(options: MCPOptions) -> list[ServerConfig]:
    servers = options.servers or options.mcpServers or {}
    if not isinstance(servers, dict):
        raise ConfigError(
            "tools.servers must be a mapping of server name to {command, args} or {url}",
            hint="see `cozy tools import-claude-config` for the expected shape",
        )
    return [parse_server(str(name), raw, options) for name, raw in servers.items()]


def import_claude_config(path: str | Path, renames: dict[str, str] | None = None) -> dict[str, Any]:
    """Read a Claude Desktop config and return the `servers:` mapping for engines.yaml.

    Names cozy cannot use as they are (reserved for built-ins, or with characters other
    than letters, digits, '_' and '-') are changed; `renames` gets old -> new."""
    file = Path(expand_path(str(path)))
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{file}: no such file", hint="pass the path of claude_desktop_config.json"
        ) from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{file}:{exc.lineno}: invalid JSON ({exc.msg})") from exc
    servers = data.get("mcpServers") if isinstance(data, dict) else None
    if not isinstance(servers, dict):
        raise ConfigError(
            f"{file}: no `mcpServers` object found", hint="is this a Claude Desktop config?"
        )
    out: dict[str, Any] = {}
    keep = ("command", "args", "env", "cwd", "url", "headers", "transport", "type", "disabled")
    for name, entry in servers.items():
        if not isinstance(entry, dict):
            raise ConfigError(f"{file}: mcpServers.{name} must be an object")
        item = {k: entry[k] for k in keep if k in entry and entry[k] not in (None, [], {})}
        if "type" in item:
            kind = str(item.pop("type"))
            if kind in ("http", "streamable-http", "sse"):
                item["transport"] = "sse" if kind == "sse" else "streamable-http"
        safe = re.sub(r"[^A-Za-z0-9_-]", "_", str(name))
        if safe.lower() in RESERVED:
            safe = f"{safe}-mcp"
        if renames is not None and safe != name:
            renames[str(name)] = safe
        out[safe] = item
    return out
