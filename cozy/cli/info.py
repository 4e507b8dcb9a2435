"""`cozy personalities`, `cozy models`, `cozy config`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from cozy.cli._common import (
    personality_catalog,
    print_json,
    print_rows,
    run_async,
    runtime,
    state,
)

if TYPE_CHECKING:
    from cozy.core.types import ModelInfo

personalities_app = typer.Typer(help="Personalities (profiles/*.yaml).", no_args_is_help=True)
config_app = typer.Typer(
    help="Show or change the configuration (show, path, set, edit).", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(personalities_app, name="personalities")
    app.add_typer(config_app, name="config")
    models_app = typer.Typer(help="List the models the configured provider offers.")
    models_app.callback(invoke_without_command=True)(models_cmd)

    @models_app.command("default")
    def models_default(model: str = typer.Argument(help="provider:model or alias")) -> None:
        """Set the model used when a run names none (ai.model in your engines.yaml)."""
        from cozy.cli.config_edit import set_default_model

        set_default_model(model)

    app.add_typer(models_app, name="models")
    from cozy.cli.config_edit import register as register_edit

    register_edit(config_app, app)


@personalities_app.command("list")
def personalities_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List personalities."""
    items = list(personality_catalog().values())
    print_rows(
        ("id", "name", "model", "tools", "description"),
        items,
        lambda p: (p.id, p.name, p.model or "(default)", ", ".join(p.tools) or "-", p.description),
        as_json=as_json,
        data=[p.summary() for p in items],
    )


@personalities_app.command("show")
def personalities_show(name: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show one personality in full."""
    items = personality_catalog()
    if name not in items:
        typer.echo(
            f"error: unknown personality '{name}' — known personalities: "
            f"{', '.join(sorted(items))}",
            err=True,
        )
        raise typer.Exit(2)
    p = items[name]
    if as_json:
        print_json({**p.model_dump(mode="json"), "source": p.source})
        return
    import yaml

    typer.echo(f"# {p.source}")
    typer.echo(yaml.safe_dump(p.model_dump(mode="json"), sort_keys=False, allow_unicode=True))


def models_cmd(
    ctx: typer.Context,
    provider: Annotated[str | None, typer.Option("--provider", help="ollama, openai, ...")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List the models the configured provider offers, and the local GGUF models
    (`cozy models default X` sets the default)."""
    if ctx.invoked_subcommand is not None:
        return

    async def go() -> tuple[list[ModelInfo], dict[str, str]]:
        async with runtime(engines=False) as rt:
            return await rt.models.available(provider), dict(rt.config.ai.aliases)

    models, aliases = run_async(go, as_json=as_json)
    if as_json:
        print_json(
            [
                {
                    "id": f"{m.provider}:{m.id}",
                    "provider": m.provider,
                    "model": m.id,
                    "context_window": m.context_window,
                    **{k: m.details[k] for k in ("path", "size") if k in m.details},
                }
                for m in models
            ]
        )
        return
    for m in models:
        window = f"  ({m.context_window:,} tokens)" if m.context_window else ""
        where = ""
        if "path" in m.details:
            size = m.details.get("size")
            where = f"  {m.details['path']}" + (f" ({size / 1e6:,.0f} MB)" if size else "")
        typer.echo(f"{m.provider}:{m.id}{window}{where}")
    for alias, target in aliases.items():
        typer.echo(f"{alias} -> {target}")


@config_app.command("show")
def config_show(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Print settings and the merged engines.yaml (secrets redacted)."""
    from cozy.core.errors import CozyError
    from cozy.observability.logging import redact
    from cozy.runtime import Runtime

    s = state.settings()
    try:
        cfg = Runtime.load_config(s)
    except CozyError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    data = {"settings": s.public_dict(), "engines": redact(cfg.model_dump(mode="json"))}
    if as_json:
        print_json(data)
        return
    import yaml

    typer.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


@config_app.command("path")
def config_path() -> None:
    """Print where cozy reads config and keeps data."""
    s = state.settings()
    typer.echo(f"config dir:   {s.config_dir}")
    typer.echo(f"engines.yaml: {' + '.join(str(p) for p in s.engines_files)}")
    typer.echo(f"profiles:     {s.packaged_profiles_dir} + {s.user_profiles_dir}")
    typer.echo(f"data dir:     {s.data_dir}")
    typer.echo(f"database:     {s.public_dict()['database']}")
