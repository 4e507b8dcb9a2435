"""Parse a model's structured (JSON) answer into a pydantic model, with a reason on failure.

Shared by the engines that ask the AI engine for JSON (memory extraction, profile
updates); a ValueError carries what was wrong so the caller can retry or log it.
"""

from __future__ import annotations

import json
from typing import TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


def parse_json_answer(text: str, model: type[M]) -> M:
    """Validate the model's answer against `model`; raise ValueError with the reason."""
    raw = text.strip()
    if raw.startswith("```"):  # tolerate a fenced answer
        raw = raw.strip("`")
        raw = raw[raw.find("{") :]
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg} at char {exc.pos})") from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"JSON does not match the schema at {where}: {first['msg']}") from exc
