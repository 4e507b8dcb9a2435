"""Deterministic building blocks of the fake model server.

Token counting and splitting, embeddings from hashed words, and JSON synthesised
from a JSON schema. No third-party imports except `jsonschema` (validation only).
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import struct
from typing import Any

_TOKEN_RE = re.compile(r"\s*\S+")
_WORD_RE = re.compile(r"\w+")


def count_tokens(text: str) -> int:
    """The fake tokenizer: whitespace-separated words."""
    return len(text.split())


def split_tokens(text: str) -> list[str]:
    """Split text into one piece per token; joining the pieces gives `text` back."""
    pieces = _TOKEN_RE.findall(text)
    if not pieces:
        return [text] if text else []
    consumed = sum(len(p) for p in pieces)
    if consumed < len(text):
        pieces[-1] += text[consumed:]
    return pieces


def split_even(text: str, parts: int) -> list[str]:
    """Split text into up to `parts` non-empty slices (used for tool-call arguments)."""
    if not text:
        return [""]
    parts = max(1, min(parts, len(text)))
    size = math.ceil(len(text) / parts)
    return [text[i : i + size] for i in range(0, len(text), size)]


def embed_text(text: str, dims: int) -> list[float]:
    """A normalised vector from hashed words: texts sharing words are close."""
    vec = [0.0] * dims
    words = [w.lower() for w in _WORD_RE.findall(text)] or [text]
    for word in words:
        digest = hashlib.sha256(word.encode()).digest()
        for k in range(4):
            idx = int.from_bytes(digest[k * 4 : k * 4 + 4], "little") % dims
            sign = 1.0 if digest[16 + k] & 1 else -1.0
            vec[idx] += sign * (1.0 / (k + 1))
    norm = math.sqrt(sum(v * v for v in vec))
    if norm == 0.0:
        vec[0], norm = 1.0, 1.0
    return [v / norm for v in vec]


def encode_base64(vec: list[float]) -> str:
    """OpenAI's base64 embedding encoding: little-endian float32."""
    return base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode()


def is_valid(value: Any, schema: dict[str, Any]) -> bool:
    import jsonschema

    try:
        jsonschema.validate(value, schema)
    except (jsonschema.ValidationError, jsonschema.SchemaError):
        return False
    return True


def synthesize(schema: dict[str, Any], hint: str = "") -> Any:
    """A value that validates against `schema` for the common schema keywords."""
    return _Synth(schema, hint).value(schema, "value")


class _Synth:
    def __init__(self, root: dict[str, Any], hint: str) -> None:
        self.root = root
        self.hint = hint
        self.depth = 0

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        ref = schema.get("$ref")
        while isinstance(ref, str) and ref.startswith("#/"):
            node: Any = self.root
            for part in ref[2:].split("/"):
                node = node.get(part, {}) if isinstance(node, dict) else {}
            merged = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**node, **merged} if isinstance(node, dict) else merged
            ref = schema.get("$ref")
        return schema

    def value(self, schema: Any, name: str) -> Any:
        if not isinstance(schema, dict):
            return self.hint or name
        schema = self.resolve(schema)
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            return schema["enum"][0]
        if "default" in schema and is_valid(schema["default"], schema):
            return schema["default"]
        if "allOf" in schema:
            merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
            for sub in schema["allOf"]:
                sub = self.resolve(sub) if isinstance(sub, dict) else {}
                props = {**merged.get("properties", {}), **sub.get("properties", {})}
                required = [*merged.get("required", []), *sub.get("required", [])]
                merged = {**merged, **sub, "properties": props, "required": required}
            return self.value(merged, name)
        for key in ("anyOf", "oneOf"):
            if schema.get(key):
                options = [s for s in schema[key] if isinstance(s, dict)]
                non_null = [s for s in options if s.get("type") != "null"] or options
                return self.value(non_null[0] if non_null else {}, name)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((t for t in kind if t != "null"), kind[0] if kind else None)
        if kind is None:
            kind = "object" if "properties" in schema else "string"
        return self.typed(str(kind), schema, name)

    def typed(self, kind: str, schema: dict[str, Any], name: str) -> Any:
        if kind == "object":
            return self.obj(schema)
        if kind == "array":
            return self.array(schema, name)
        if kind in ("integer", "number"):
            return self.number(kind, schema)
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return self.string(schema, name)

    def obj(self, schema: dict[str, Any]) -> dict[str, Any]:
        self.depth += 1
        props: dict[str, Any] = schema.get("properties", {})
        required = set(schema.get("required", props.keys()))
        out: dict[str, Any] = {}
        for key, sub in props.items():
            if key in required or self.depth < 4:
                out[key] = self.value(sub, key)
        self.depth -= 1
        return out

    def array(self, schema: dict[str, Any], name: str) -> list[Any]:
        lo = int(schema.get("minItems", 1))
        hi = schema.get("maxItems")
        count = lo if hi is None else min(max(lo, 1), int(hi))
        prefix = schema.get("prefixItems", [])
        items = [self.value(prefix[i], name) for i in range(min(len(prefix), count))]
        while len(items) < count:
            items.append(self.value(schema.get("items", {}), name))
        if schema.get("uniqueItems") and len(items) > 1:
            items = [
                *items[:1],
                *[f"{v}-{i}" if isinstance(v, str) else v for i, v in enumerate(items[1:], 1)],
            ]
        return items

    def number(self, kind: str, schema: dict[str, Any]) -> int | float:
        lo = schema.get("minimum", schema.get("exclusiveMinimum"))
        hi = schema.get("maximum", schema.get("exclusiveMaximum"))
        value: float = 1.0
        if lo is not None:
            value = float(lo) + (
                1 if "exclusiveMinimum" in schema and "minimum" not in schema else 0
            )
        if hi is not None and value > float(hi):
            value = float(hi) - (
                1 if "exclusiveMaximum" in schema and "maximum" not in schema else 0
            )
        step = schema.get("multipleOf")
        if step:
            value = math.ceil(value / float(step)) * float(step)
        return int(value) if kind == "integer" else value

    def string(self, schema: dict[str, Any], name: str) -> str:
        fmt = schema.get("format")
        formats = {
            "date-time": "2024-01-01T00:00:00Z",
            "date": "2024-01-01",
            "time": "00:00:00",
            "email": "user@example.com",
            "uri": "https://example.com/",
            "uuid": "00000000-0000-4000-8000-000000000000",
        }
        text = formats.get(str(fmt), self.hint or name) if fmt else (self.hint or name)
        lo = int(schema.get("minLength", 0))
        hi = schema.get("maxLength")
        if len(text) < lo:
            text = text + "x" * (lo - len(text))
        if hi is not None:
            text = text[: int(hi)]
        return text
