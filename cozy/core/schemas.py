"""Structured output: `--schema` as a JSON Schema or a concise field list.

The concise form is a list of fields separated by commas or newlines, each
`name [type][: description]`, type one of str (the default), int, float, bool:

    name, age int, bio: their bio in one sentence

Every field is required. The schema travels as OpenAI's `response_format`, which each
AI provider turns into its own constraint (Ollama's `format`, llama.cpp's grammar).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from cozy.core.errors import UsageError

_TYPES = {
    "str": "string",
    "string": "string",
    "int": "integer",
    "integer": "integer",
    "float": "number",
    "number": "number",
    "bool": "boolean",
    "boolean": "boolean",
}
_FIELD = re.compile(r"^(?P<name>[A-Za-z_][\w-]*)(?:\s+(?P<type>\w+))?$")


def concise(spec: str) -> dict[str, Any]:
    """`name, age int, bio: ...` -> a JSON Schema object with every field required."""
    lines = spec.splitlines() if "\n" in spec else spec.split(",")
    properties: dict[str, Any] = {}
    for raw in lines:
        item = raw.strip()
        if not item:
            continue
        head, _, desc = item.partition(":")
        m = _FIELD.match(head.strip())
        if m is None:
            raise UsageError(
                f"--schema: cannot read the field '{item}'",
                hint="write fields as `name [type][: description]`, e.g. "
                "--schema 'name, age int, bio: their bio'",
            )
        kind = (m["type"] or "str").lower()
        if kind not in _TYPES:
            raise UsageError(
                f"--schema: unknown type '{m['type']}' for '{m['name']}'",
                hint="use one of str, int, float, bool (str when left out)",
            )
        prop: dict[str, Any] = {"type": _TYPES[kind]}
        if desc.strip():
            prop["description"] = desc.strip()
        properties[m["name"]] = prop
    if not properties:
        raise UsageError("--schema is empty", hint="e.g. --schema 'name, age int'")
    return {"type": "object", "properties": properties, "required": list(properties)}


def resolve(arg: str) -> dict[str, Any]:
    """A JSON Schema from `--schema`: a file (JSON or concise), inline JSON, or concise."""
    text = arg
    path = Path(arg).expanduser()
    if "\n" not in arg and len(arg) < 4096 and path.is_file():
        text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("{"):
        try:
            schema = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(
                f"--schema: not valid JSON ({exc.msg} at line {exc.lineno})",
                hint="fix the JSON Schema, or use the concise form: --schema 'name, age int'",
            ) from None
        if not isinstance(schema, dict):
            raise UsageError("--schema: a JSON Schema is an object")
        _check_schema(schema)
        return schema
    return concise(text)


def many(schema: dict[str, Any]) -> dict[str, Any]:
    """`--schema-multi`: a list of such objects, under `items`."""
    return {
        "type": "object",
        "properties": {"items": {"type": "array", "items": schema}},
        "required": ["items"],
    }


def response_format(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}


def problem(text: str, schema: dict[str, Any]) -> str | None:
    """Why `text` is not a JSON value valid against `schema` (None: it is)."""
    import jsonschema

    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"not valid JSON ({exc.msg} at character {exc.pos})"
    try:
        jsonschema.validate(data, schema)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "the top level"
        return f"{where}: {exc.message}"
    return None


def _check_schema(schema: dict[str, Any]) -> None:
    import jsonschema

    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise UsageError(f"--schema: not a valid JSON Schema ({exc.message})") from None
