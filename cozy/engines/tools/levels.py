"""Side-effect levels for MCP tools, from annotations plus per-tool overrides."""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Any, cast

from cozy.core.types import SideEffect

LEVELS: tuple[SideEffect, ...] = ("read-only", "write", "network", "dangerous")


def is_level(value: object) -> bool:
    return isinstance(value, str) and value in LEVELS


def level_from_annotations(annotations: Any, *, trusted: bool = False) -> SideEffect:
    """Map MCP tool annotations (hints) to a cozy side-effect level.

    The MCP spec says hints are untrusted unless the server is, so by default the
    riskier hint wins when they disagree (`readOnlyHint` with `openWorldHint` is a
    network tool: a "read-only" fetch still talks to the world):

    - no annotations at all -> dangerous (unknown)
    - destructiveHint true -> dangerous
    - openWorldHint true -> network
    - readOnlyHint true -> read-only
    - destructiveHint false (explicitly not destructive) -> write
    - anything else: the MCP spec's default for destructiveHint is true -> dangerous

    `trusted` (a server's `trust_annotations: true`) takes readOnlyHint at its word.
    """
    if annotations is None:
        return "dangerous"
    read_only = _hint(annotations, "read_only_hint", "readOnlyHint")
    destructive = _hint(annotations, "destructive_hint", "destructiveHint")
    open_world = _hint(annotations, "open_world_hint", "openWorldHint")
    if read_only is True and trusted:
        return "read-only"
    if destructive is True:
        return "dangerous"
    if open_world is True:
        return "network"
    if read_only is True:
        return "read-only"
    if destructive is False:
        return "write"
    return "dangerous"


def _hint(annotations: Any, attr: str, key: str) -> bool | None:
    if isinstance(annotations, Mapping):
        value = annotations.get(key, annotations.get(attr))
    else:
        value = getattr(annotations, attr, None)
    return value if isinstance(value, bool) else None


def override_level(tool: str, overrides: Mapping[str, str]) -> SideEffect | None:
    """The configured level for `tool`: exact name first, then glob patterns."""
    if tool in overrides:
        return cast(SideEffect, overrides[tool])
    for pattern, level in overrides.items():
        if any(c in pattern for c in "*?[") and fnmatchcase(tool, pattern):
            return cast(SideEffect, level)
    return None


def resolve_level(
    tool: str, annotations: Any, overrides: Mapping[str, str], *, trusted: bool = False
) -> SideEffect:
    return override_level(tool, overrides) or level_from_annotations(annotations, trusted=trusted)
