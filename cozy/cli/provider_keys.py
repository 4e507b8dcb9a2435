"""`cozy keys set/unset/providers`: model-provider API keys (not `cozy serve`'s own).

`cozy keys create/list/revoke` manage the keys clients use to reach `cozy serve`;
these store the key cozy itself uses to reach a provider (e.g. OpenAI), in
`<config dir>/keys.json` (mode 0600). A key is never printed.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from cozy.cli._common import fail, print_json, state

if TYPE_CHECKING:
    from cozy.storage.provider_keys import ProviderKeys

KNOWN = {"openai": "OPENAI_API_KEY"}  # providers that take a key, and their env variable


def _store() -> ProviderKeys:
    from cozy.runtime.models import provider_keys

    return provider_keys(state.settings())


def set_key(
    provider: Annotated[str, typer.Argument(help="model provider, e.g. openai")],
    value: Annotated[
        str | None, typer.Option("--value", help="the key (default: asked, or read from stdin)")
    ] = None,
) -> None:
    """Store a model provider's API key (used when neither engines.yaml nor its env
    variable gives one); it is never printed."""
    if provider not in KNOWN:
        fail(f"unknown provider '{provider}'", code=2, kind="invalid_request_error")
    if value is None:
        if sys.stdin.isatty():
            value = typer.prompt(f"{provider} API key", hide_input=True)
        else:
            value = sys.stdin.readline()
    value = value.strip()
    if not value:
        fail("the key is empty", code=2, kind="invalid_request_error")
    store = _store()
    store.set(provider, value)
    typer.echo(f"stored the {provider} key in {store.path} (readable by you only)", err=True)
    env = KNOWN[provider]
    if os.environ.get(env):
        typer.echo(f"note: {env} is set in this shell and wins over the stored key", err=True)


def unset_key(provider: Annotated[str, typer.Argument(help="model provider")]) -> None:
    """Forget a stored model provider key."""
    if not _store().remove(provider):
        fail(f"no stored key for '{provider}'", code=2, kind="invalid_request_error")
    typer.echo(f"removed the stored {provider} key", err=True)


def list_provider_keys(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Which model providers have a key, and from where (never the key itself)."""
    store = _store()
    stored = set(store.names())
    rows = []
    for provider, env in KNOWN.items():
        source = "env " + env if os.environ.get(env) else "keys.json" if provider in stored else "-"
        rows.append({"provider": provider, "key": source != "-", "source": source})
    if as_json:
        print_json(rows)
        return
    for r in rows:
        typer.echo(f"{r['provider']:<10} {'set' if r['key'] else 'not set':<8} {r['source']}")


def register(keys_app: typer.Typer) -> None:
    """`cozy keys set/unset/providers`, beside the API-key commands of cli/keys.py."""
    keys_app.command("set")(set_key)
    keys_app.command("unset")(unset_key)
    keys_app.command("providers")(list_provider_keys)
