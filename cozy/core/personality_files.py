"""Create, replace and delete user personalities (YAML files in the user's profiles dir).

Packaged personalities are read-only; a user file with the same id overrides one.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from cozy.core.errors import NotFoundError, UsageError
from cozy.core.personalities import Personality, PersonalityCatalog

_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def save_personality(
    catalog: PersonalityCatalog, directory: Path, data: dict[str, Any]
) -> Personality:
    try:
        p = Personality.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise UsageError(f"invalid personality: {where}: {first['msg']}") from None
    directory.mkdir(parents=True, exist_ok=True)
    body = yaml.safe_dump(p.model_dump(exclude_defaults=True), sort_keys=False, allow_unicode=True)
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(body)
    os.replace(tmp, directory / f"{p.id}.yaml")
    catalog.invalidate()
    return catalog.get(p.id)


def delete_personality(catalog: PersonalityCatalog, directory: Path, pid: str) -> None:
    path = directory / f"{pid}.yaml"
    if not _ID.match(pid) or not path.is_file():
        if pid in catalog.all():
            raise UsageError(
                f"'{pid}' is a packaged personality and cannot be deleted",
                hint="override it instead by saving a personality with the same id",
            )
        raise NotFoundError(f"unknown personality '{pid}'", hint="see GET /v1/personalities")
    path.unlink()
    catalog.invalidate()
