"""Prompt templates: YAML files in the config dir's `templates/`, one per name.

    # templates/summarize.yaml
    description: a summary of the input
    prompt: "Summarize in $words words:\\n\\n$input"
    system: Be terse.
    defaults: {words: "50"}
    options: {temperature: 0.2}

`$input` is the prompt the user gave (arguments, stdin, fragments); a template with no
`$input` gets it appended. Other `$names` come from `--param NAME VALUE` or `defaults`.
`model`, `personality`, `schema` (concise or a JSON Schema) and `options` apply unless
the command line says otherwise. The TUI and `cozy run` read the same files.
"""

from __future__ import annotations

import os
import re
import string
import tempfile
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cozy.core.errors import NotFoundError, UsageError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class Template(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = ""
    description: str = ""
    prompt: str = "$input"
    system: str | None = None
    model: str | None = None
    personality: str | None = None
    schema_: str | dict[str, Any] | None = Field(default=None, alias="schema")
    options: dict[str, Any] = Field(default_factory=dict)
    defaults: dict[str, str] = Field(default_factory=dict)

    def variables(self) -> list[str]:
        """The `$names` the prompt and system use, `input` left out."""
        names: list[str] = []
        for text in (self.prompt, self.system or ""):
            for name in string.Template(text).get_identifiers():
                if name != "input" and name not in names:
                    names.append(name)
        return names

    def render(self, text: str, params: dict[str, str]) -> tuple[str, str | None]:
        """(prompt, system) with `$input` and the parameters filled in."""
        values = {**self.defaults, **params}
        missing = [n for n in self.variables() if n not in values]
        if missing:
            flags = " ".join(f"--param {n} VALUE" for n in missing)
            raise UsageError(
                f"template '{self.name}' needs {', '.join(missing)}",
                hint=f"add {flags} (or set defaults in `cozy templates edit {self.name}`)",
            )
        unknown = [n for n in params if n not in self.variables()]
        if unknown:
            raise UsageError(
                f"template '{self.name}' has no parameter {', '.join(unknown)}",
                hint=f"its parameters: {', '.join(self.variables()) or 'none'}",
            )
        values["input"] = text
        prompt = string.Template(self.prompt).safe_substitute(values)
        if "input" not in string.Template(self.prompt).get_identifiers() and text.strip():
            prompt = f"{prompt}\n\n{text}" if prompt.strip() else text
        system = string.Template(self.system).safe_substitute(values) if self.system else None
        return prompt, system


class TemplateStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, name: str) -> Path:
        if not _NAME.match(name):
            raise UsageError(
                f"'{name}' is not a template name",
                hint="use letters, digits, '.', '_' and '-' (e.g. summarize)",
            )
        return self.directory / f"{name}.yaml"

    def names(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(p.stem for p in self.directory.glob("*.yaml"))

    def get(self, name: str) -> Template:
        path = self.path(name)
        if not path.is_file():
            known = ", ".join(self.names()) or "none yet"
            raise NotFoundError(
                f"no template '{name}' (templates: {known})",
                hint=f"create it with `cozy templates set {name} --prompt '...$input'`",
            )
        return self.parse(name, path.read_text(encoding="utf-8"), str(path))

    @staticmethod
    def parse(name: str, text: str, where: str) -> Template:
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise UsageError(f"{where}: not valid YAML ({exc})") from None
        if isinstance(data, str):  # a file holding only the prompt
            data = {"prompt": data}
        if not isinstance(data, dict):
            raise UsageError(f"{where}: a template is a mapping (prompt:, system:, ...)")
        try:
            return Template.model_validate({**data, "name": name})
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(x) for x in first["loc"])
            raise UsageError(f"{where}: {field}: {first['msg']}") from None

    def save(self, name: str, template: Template) -> Path:
        path = self.path(name)
        body = template.model_dump(by_alias=True, exclude_defaults=True, exclude={"name"})
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            yaml.safe_dump(body, fh, sort_keys=False, allow_unicode=True)
        os.replace(tmp, path)
        return path

    def delete(self, name: str) -> None:
        path = self.path(name)
        if not path.is_file():
            raise NotFoundError(f"no template '{name}'", hint="see `cozy templates list`")
        path.unlink()
