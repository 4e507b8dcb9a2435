"""Load YAML files into pydantic models with file:line:field error messages.

PyYAML's node tree keeps the line of every key and value; we walk it alongside
pydantic's error locations so a bad value is reported where it is written.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, TypeVar, get_args

from pydantic import BaseModel, ValidationError

from cozy.core.errors import ConfigError

M = TypeVar("M", bound=BaseModel)

_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(value: Any) -> Any:
    """Expand `${VAR}` and `${VAR:-default}` in every string of a YAML tree."""
    if isinstance(value, str):
        return _ENV_RE.sub(lambda m: os.environ.get(m.group(1), m.group(2) or ""), value)
    if isinstance(value, dict):
        return {k: expand_env(v) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v) for v in value]
    return value


def read_yaml(path: Path) -> tuple[Any, Any]:
    """Return (data, node tree). Errors name the file and line."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: file not found", hint="check the path or `--config`") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({exc})") from exc
    # one parse gives both the node tree (lines) and the data; libyaml when built in
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: invalid YAML: {problem}", hint="fix the syntax") from exc
    finally:
        loader.dispose()
    return data, node


def _line_of(node: Any, loc: tuple[int | str, ...]) -> int | None:
    """Line (1-based) of the deepest node on `loc` that exists in the YAML tree."""
    import yaml

    line = node.start_mark.line + 1 if node is not None else None
    current = node
    for part in loc:
        if isinstance(current, yaml.MappingNode):
            nxt = None
            for key_node, value_node in current.value:
                if key_node.value == str(part):
                    line = key_node.start_mark.line + 1
                    nxt = value_node
                    break
            if nxt is None:
                return line
            current = nxt
        elif isinstance(current, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(current.value):
                return line
            current = current.value[part]
            line = current.start_mark.line + 1
        else:
            return line
    return line


def validate(model: type[M], data: Any, path: Path, node: Any = None) -> M:
    """Validate `data` against `model`; raise ConfigError with file:line: field."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: expected a mapping at the top level")
    try:
        return model.model_validate(expand_env(data))
    except ValidationError as exc:
        raise config_error(exc, model, path, node) from exc


def config_error(
    exc: ValidationError,
    model: type[BaseModel],
    path: Path | None,
    node: Any = None,
    prefix: tuple[str, ...] = (),
) -> ConfigError:
    """The first problem of `exc` as file:line: field: message. `prefix` is where
    `model` sits in the file (e.g. `memory` for a provider's options)."""
    err = exc.errors()[0]
    loc, _ = _fields_path(model, tuple(err["loc"]))
    field = ".".join(str(p) for p in (*prefix, *loc)) or "(top level)"
    line = _line_of(node, (*prefix, *loc)) if node is not None else None
    where = f"{path}:{line}" if line else str(path or "engines.yaml")
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        fields = getattr(_fields_path(model, tuple(err["loc"])[:-1])[1], "model_fields", {})
        msg = f"unknown key (allowed: {', '.join(sorted(fields))})"
    more = len(exc.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return ConfigError(f"{where}: {field}: {msg}{suffix}", hint=f"edit {path or 'engines.yaml'}")


def has_key(node: Any, keys: tuple[str, ...]) -> bool:
    """Whether the YAML tree `node` spells out the mapping keys `keys`."""
    import yaml

    current = node
    for key in keys:
        if not isinstance(current, yaml.MappingNode):
            return False
        current = next((v for k, v in current.value if k.value == key), None)
        if current is None:
            return False
    return True


def _fields_path(model: type[BaseModel], loc: tuple[int | str, ...]) -> tuple[tuple[Any, ...], Any]:
    """`loc` without the tags pydantic puts in it for a tagged union (`voice.stt` is
    tagged by its `provider`), and the annotation it ends at (a model, or not)."""
    kept: list[Any] = []
    current: Any = model
    for part in loc:
        fields = getattr(current, "model_fields", None)
        if fields and part in fields:
            kept.append(part)
            current = _optional_model(fields[part].annotation)
        elif (member := _tagged_member(current, str(part))) is not None:
            current = member
        else:
            kept.append(part)
            current = None
    return tuple(kept), current


def _optional_model(annotation: Any) -> Any:
    """`Model | None` as Model (other annotations as they are)."""
    models = [a for a in get_args(annotation) if hasattr(a, "model_fields")]
    others = [a for a in get_args(annotation) if a is not type(None)]
    return models[0] if len(models) == 1 and len(others) == 1 else annotation


def _tagged_member(annotation: Any, tag: str) -> Any:
    """The member of a tagged union that pydantic's `Tag(tag)` marks, else None."""
    for arg in get_args(annotation):
        if any(getattr(meta, "tag", None) == tag for meta in getattr(arg, "__metadata__", ())):
            return get_args(arg)[0]
        if (found := _tagged_member(arg, tag)) is not None:
            return found
    return None


def load_model(model: type[M], path: Path) -> M:
    data, node = read_yaml(path)
    return validate(model, data, path, node)
