"""Parse a model's structured (JSON) answer into a pydantic model, with a reason on failure.

Shared by the engines that ask the AI engine for JSON (memory extraction, profile
updates); a ValueError carries what was wrong so the caller can retry or log it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from cozy.core.types import GenerationOptions, Message

M = TypeVar("M", bound=BaseModel)


def list_schema(key: str, item: dict[str, Any], required: Sequence[str]) -> dict[str, Any]:
    """The JSON schema of an answer `{key: [item, ...]}` (objects with `item`'s properties)."""
    items = {"type": "object", "properties": item, "required": list(required)}
    return {
        "type": "object",
        "properties": {key: {"type": "array", "items": items}},
        "required": [key],
    }


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


async def ask_json(
    engine: Any,
    model: str,
    messages: Sequence[Message],
    answer: type[M],
    *,
    name: str,
    schema: dict[str, Any],
    max_tokens: int | None,
    attempts: int,
    log: logging.Logger,
    what: str,
    failed: Callable[[str], Exception],
) -> M:
    """Ask the AI engine for a JSON answer matching `answer`, at temperature 0.

    An answer that does not parse is logged (`<what> answer rejected`) and asked again,
    up to `attempts` times in all; then `failed(reasons)` is raised (one per attempt).
    """
    options = GenerationOptions(
        temperature=0.0,
        max_tokens=max_tokens,
        response_format={"type": "json_schema", "json_schema": {"name": name, "schema": schema}},
    )
    errors: list[str] = []
    for attempt in range(1, attempts + 1):
        result = await engine.chat(list(messages), model=model, options=options)
        try:
            return parse_json_answer(result.content, answer)
        except ValueError as exc:
            errors.append(f"attempt {attempt}: {exc}")
            log.warning("%s answer rejected (%s)", what, exc)
    raise failed("; ".join(errors))
