"""`cozy templates list|show|set|edit|rm`: prompt templates for `cozy run -t NAME`."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cozy.cli import complete
from cozy.cli.pairs import PairsCommand, pairs

if TYPE_CHECKING:
    from cozy.core.templates import TemplateStore


def _store() -> TemplateStore:
    from cozy.cli._common import state
    from cozy.cli.run_inputs import templates_dir
    from cozy.core.templates import TemplateStore

    return TemplateStore(templates_dir(state.settings()))


def _fail(exc: Exception) -> typer.Exit:
    from cozy.core.errors import CozyError

    code = exc.exit_code if isinstance(exc, CozyError) else 1
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(code)


Name = Annotated[str, typer.Argument(help="the template", autocompletion=complete.templates)]


tapp = typer.Typer(help="Prompt templates with $variables (cozy run -t NAME).")


def register(app: typer.Typer) -> None:
    app.add_typer(tapp, name="templates")


@tapp.command("list")
def list_cmd(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The templates, with their parameters and description."""
    from cozy.core.errors import CozyError

    store = _store()
    rows: list[dict[str, Any]] = []
    for name in store.names():
        try:
            t = store.get(name)
        except CozyError as exc:  # one broken file does not hide the others
            rows.append({"name": name, "error": str(exc)})
            continue
        rows.append({"name": name, "params": t.variables(), "description": t.description})
    if as_json:
        typer.echo(json.dumps(rows))
        return
    if not rows:
        typer.echo(
            "no templates yet: `cozy templates set NAME --prompt 'Summarize: $input'`",
            err=True,
        )
    for r in rows:
        params = " ".join(f"${p}" for p in r.get("params", []))
        typer.echo(f"{r['name']}\t{params}\t{r.get('description') or r.get('error', '')}")


@tapp.command("show")
def show_cmd(name: Name) -> None:
    """Print the template's YAML file."""
    try:
        store = _store()
        store.get(name)  # a clear error for an unknown one
        typer.echo(store.path(name).read_text(encoding="utf-8").rstrip())
    except Exception as exc:
        raise _fail(exc) from None


@tapp.command("set", cls=PairsCommand)
def set_cmd(
    name: Name,
    prompt: Annotated[
        str | None, typer.Option("--prompt", help="text with $input and $names")
    ] = None,
    system: Annotated[str | None, typer.Option("--system")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m")] = None,
    personality: Annotated[str | None, typer.Option("--personality")] = None,
    schema: Annotated[str | None, typer.Option("--schema")] = None,
    description: Annotated[str | None, typer.Option("--description")] = None,
    default: Annotated[
        list[str] | None,
        typer.Option("--default", metavar="NAME VALUE", help="a parameter's default; repeat"),
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option("--option", "-o", metavar="KEY VALUE", help="as cozy run -o; repeat"),
    ] = None,
) -> None:
    """Create a template or change the fields given (the others are kept)."""
    from cozy.core import genopts
    from cozy.core.errors import CozyError, NotFoundError
    from cozy.core.templates import Template

    store = _store()
    try:
        try:
            data = store.get(name).model_dump(by_alias=True, exclude={"name"})
        except NotFoundError:
            data = Template().model_dump(by_alias=True, exclude={"name"})
        given = {
            "prompt": prompt,
            "system": system,
            "model": model,
            "personality": personality,
            "schema": schema,
            "description": description,
        }
        data.update({k: v for k, v in given.items() if v is not None})
        data["defaults"] = {**data.get("defaults", {}), **dict(pairs(default))}
        if option:
            genopts.parse(pairs(option))  # checked now, not at the first run
            data["options"] = {**data.get("options", {}), **dict(pairs(option))}
        path = store.save(name, Template.model_validate({**data, "name": name}))
    except CozyError as exc:
        raise _fail(exc) from None
    typer.echo(f"saved {path}", err=True)


@tapp.command("edit")
def edit_cmd(name: Name) -> None:
    """Open the template in $VISUAL/$EDITOR (created if new); checked when closed."""
    from cozy.core.errors import CozyError

    store = _store()
    try:
        path = store.path(name)
    except CozyError as exc:
        raise _fail(exc) from None
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            "# cozy run -t NAME: $input is the prompt; other $names come from --param\n"
            "prompt: |\n  $input\n",
            encoding="utf-8",
        )
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    subprocess.run([*shlex.split(editor), str(path)], check=False)
    try:
        store.get(name)
    except CozyError as exc:
        typer.echo(f"error: {exc} (run `cozy templates edit {name}` again)", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{path}: valid", err=True)


@tapp.command("rm")
def rm_cmd(name: Name) -> None:
    """Delete a template."""
    try:
        _store().delete(name)
    except Exception as exc:
        raise _fail(exc) from None
    typer.echo(f"removed {name}", err=True)
