"""Tool policy pieces the tool loop applies to every tool, whatever its provider.

- argument validation against the tool's JSON schema (an invalid call goes back to
  the model as an error result, the tool never runs);
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


_VALIDATORS: dict[int, tuple[Mapping[str, Any], Any]] = {}


def check_arguments(schema: Mapping[str, Any] | None, arguments: dict[str, Any]) -> str | None:
    """None when `arguments` fit `schema`, else a message the model can act on."""
    if not schema:
        return None
    import jsonschema

    hit = _VALIDATORS.get(id(schema))
    try:
        if hit is not None and hit[0] is schema:
            validator = hit[1]
        else:
            validator = jsonschema.validators.validator_for(schema)(schema)
            validator.check_schema(schema)
            if len(_VALIDATORS) > 1024:
                _VALIDATORS.clear()
            _VALIDATORS[id(schema)] = (schema, validator)
        errors = sorted(validator.iter_errors(arguments), key=lambda e: list(e.absolute_path))
    except jsonschema.SchemaError:
        return None  # a broken schema: let the tool itself judge
    if not errors:
        return None
    parts = []
    for err in errors[:5]:
        where = "/".join(str(p) for p in err.absolute_path) or "(root)"
        parts.append(f"at {where}: {err.message}")
    more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
    props = schema.get("properties")
    expected = ""
    if isinstance(props, Mapping) and props:
        required = schema.get("required") or []
        listed = ", ".join(f"{k}{'*' if k in required else ''}" for k in props)
        expected = f"; expected fields: {listed} (* = required)"
    return "; ".join(parts) + more + expected


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
