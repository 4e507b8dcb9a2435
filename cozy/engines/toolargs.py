"""A tool call's arguments checked against the tool's JSON schema: the one check the
tool loop runs on every call (whatever the provider) and the tools engines run on a
direct `execute_tool`. An invalid call goes back to the model as an error it can fix."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_VALIDATORS: dict[int, tuple[Mapping[str, Any], Any]] = {}


def _validator(schema: Mapping[str, Any]) -> Any:
    """Compiled validator per schema object (tool schemas are cached, so ids are stable);
    raises jsonschema.SchemaError for a broken schema (not cached)."""
    hit = _VALIDATORS.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    import jsonschema

    validator = jsonschema.validators.validator_for(schema)(schema)
    validator.check_schema(schema)
    if len(_VALIDATORS) > 1024:
        _VALIDATORS.clear()
    _VALIDATORS[id(schema)] = (schema, validator)
    return validator


def check_arguments(schema: Mapping[str, Any] | None, arguments: dict[str, Any]) -> str | None:
    """None when `arguments` fit `schema`, else a message the model can act on."""
    if not schema:
        return None
    import jsonschema

    try:
        validator = _validator(schema)
        errors = sorted(validator.iter_errors(arguments), key=lambda e: list(e.absolute_path))
    except jsonschema.SchemaError:
        return None  # a broken schema: let the tool (or its server) judge
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
