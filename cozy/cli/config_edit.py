"""`cozy config set/edit`, `cozy models default`, `cozy aliases set/rm`: change
engines.yaml without hand-editing it.

Changes go to the user's engines.yaml (or `--config FILE`), which overlays the
packaged one, so it holds only what the user changed. The result is validated
before it replaces the file; an invalid change leaves the file as it was.
PyYAML keeps no comments: a file that had some is copied to engines.yaml.bak first.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path
from typing import Any

import typer

from cozy.cli._common import fail, state


def user_file() -> Path:
    s = state.settings()
    return s.config.expanduser() if s.config is not None else s.user_engines_file


def _parse(value: str) -> Any:
    """`8192` -> 8192, `true` -> True, `[a, b]` -> list: YAML's own reading of a scalar."""
    import yaml

    try:
        return yaml.safe_load(value) if value.strip() else value
    except yaml.YAMLError:
        return value


def set_value(dotted: str, value: Any) -> Path:
    """Set `a.b.c` in the user's engines.yaml, validated; returns the file."""
    import yaml

    path = user_file()
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    data = yaml.safe_load(text) if text.strip() else {}
    if not isinstance(data, dict):
        fail(f"{path} does not hold a mapping; fix it with `cozy config edit`", code=2)
    node = data
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    if value is None:
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = value
    new = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    _replace(path, text, new)
    return path


def _replace(path: Path, old: str, new: str) -> None:
    from cozy.core.errors import CozyError

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(new, encoding="utf-8")
    s = state.settings()
    files = [f if f != path else tmp for f in s.engines_files]
    if path not in s.engines_files:
        files.append(tmp)
    try:
        from cozy.engines.config import load_engines_config

        load_engines_config(files)
    except CozyError as exc:
        tmp.unlink(missing_ok=True)
        message = str(exc).replace(str(tmp), str(path))
        fail(f"not changed: {message}", code=2, kind="invalid_request_error")
    if "#" in old:
        path.with_name(path.name + ".bak").write_text(old, encoding="utf-8")
    os.replace(tmp, path)


def register(config_app: typer.Typer, app: typer.Typer) -> None:
    @config_app.command("set")
    def config_set(
        key: str = typer.Argument(help="dotted engines.yaml key, e.g. context.token_budget"),
        value: str = typer.Argument(help="its value (YAML: 8192, true, [a, b]); '' removes"),
    ) -> None:
        """Set one engines.yaml value in your config file (validated first)."""
        path = set_value(key, _parse(value) if value != "" else None)
        typer.echo(f"{key} = {value!s} in {path}", err=True)

    @config_app.command("edit")
    def config_edit() -> None:
        """Open your engines.yaml in $VISUAL/$EDITOR; it is validated when you close it."""
        path = user_file()
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(
                "# your changes to cozy's engines.yaml (`cozy config show` shows the result)\n",
                encoding="utf-8",
            )
        editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
        subprocess.run([*shlex.split(editor), str(path)], check=False)
        from cozy.core.errors import CozyError
        from cozy.runtime import Runtime

        try:
            Runtime.load_config(state.settings())
        except CozyError as exc:
            fail(f"{exc} (run `cozy config edit` again to fix it)", code=2)
        typer.echo(f"{path}: valid", err=True)

    aliases_app = typer.Typer(help="Model aliases (short names for provider:model).")
    app.add_typer(aliases_app, name="aliases")

    @aliases_app.command("set")
    def aliases_set(
        name: str = typer.Argument(help="the alias, e.g. fast"),
        target: str = typer.Argument(help="provider:model, e.g. ollama:llama3.2:1b"),
    ) -> None:
        """Add or change an alias (`cozy run -m NAME`)."""
        path = set_value(f"ai.aliases.{name}", target)
        typer.echo(f"{name} -> {target} in {path}", err=True)

    @aliases_app.command("rm")
    def aliases_rm(name: str = typer.Argument(help="the alias")) -> None:
        """Remove an alias you set."""
        path = set_value(f"ai.aliases.{name}", None)
        typer.echo(f"removed {name} from {path}", err=True)


def set_default_model(model: str) -> None:
    """`cozy models default X`: the model used when a run names none."""
    path = set_value("ai.model", model)
    typer.echo(f"default model: {model} (in {path})", err=True)
