"""Tool policy pieces the tool loop applies to every tool, whatever its provider.

- face policies: what a face may run per side-effect level (`tools.server_policy`
  in engines.yaml; over HTTP `dangerous` is denied by default);
- the grant store protocol ("always allow this tool for this personality");
- which tools a turn offers: the personality's globs, narrowed (or, for an admin on
  a local face, replaced) by the caller's `--allow-tools`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from cozy.core.personalities import Personality
    from cozy.core.types import Caller

Rule = Literal["deny", "ask", "allow"]
RULES: tuple[str, ...] = ("deny", "ask", "allow")
LEVELS: tuple[str, ...] = ("read-only", "write", "network", "dangerous")
DEFAULT_SERVER_POLICY: dict[str, Rule] = {"dangerous": "deny"}


class GrantStore(Protocol):
    """Where remembered "always" approvals live (see cozy.storage.tool_grants)."""

    async def is_granted(self, user_id: str, personality_id: str, tool: str) -> bool: ...

    async def add_grant(self, user_id: str, personality_id: str, tool: str) -> bool: ...


def face_policies(server: Mapping[Any, Any] | None = None) -> dict[str, dict[str, Rule]]:
    """Per-face rules by level. Only the server face has rules today."""
    rules: dict[str, Rule] = dict(DEFAULT_SERVER_POLICY)
    for level, rule in (server or {}).items():
        if level not in LEVELS or rule not in RULES:
            raise ValueError(
                f"tools.server_policy.{level}: {rule!r} is not valid; levels are "
                f"{', '.join(LEVELS)} and rules {', '.join(RULES)}"
            )
        rules[str(level)] = rule
    return {"server": rules}


def matches_any(name: str, globs: list[str] | None) -> bool:
    """Whether a tool name matches any of the globs (none: no)."""
    return bool(globs) and any(fnmatch.fnmatchcase(name, g) for g in globs or ())


def _extends(caller: Caller) -> bool:
    """On a local face the user's own `--allow-tools` may reach beyond the personality."""
    return caller.allowed_tools is not None and caller.role == "admin" and caller.face in LOCAL


LOCAL = ("cli", "tui")


def offer_patterns(personality: Personality, caller: Caller) -> list[str]:
    """The globs whose tools may be offered this turn."""
    if _extends(caller):
        return list(caller.allowed_tools or [])
    return list(personality.tools)


def offered(name: str, personality: Personality, caller: Caller) -> bool:
    """Whether this tool may be offered to this caller under this personality."""
    if _extends(caller):
        return matches_any(name, caller.allowed_tools)
    if not personality.allows_tool(name):
        return False
    return caller.allowed_tools is None or matches_any(name, caller.allowed_tools)
