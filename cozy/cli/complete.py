"""Dynamic shell completion (`cozy --install-completion`): personalities, sessions,
models and aliases, read cheaply (no model server is asked; a miss completes nothing)."""

from __future__ import annotations

import contextlib


def personalities(incomplete: str) -> list[str]:
    with contextlib.suppress(Exception):
        from cozy.cli._common import personality_catalog

        return [n for n in sorted(personality_catalog()) if n.startswith(incomplete)]
    return []


def templates(incomplete: str) -> list[str]:
    with contextlib.suppress(Exception):
        from cozy.cli._common import state
        from cozy.cli.run_inputs import templates_dir
        from cozy.core.templates import TemplateStore

        names = TemplateStore(templates_dir(state.settings())).names()
        return [n for n in names if n.startswith(incomplete)]
    return []


def models(incomplete: str) -> list[str]:
    """Aliases and the configured default models (provider:model)."""
    with contextlib.suppress(Exception):
        from cozy.cli._common import state
        from cozy.runtime import Runtime

        ai = Runtime.load_config(state.settings()).ai
        names = set(ai.aliases)
        if ai.model:
            names.add(ai.model)
        for provider, options in ai.providers.items():
            default = options.get("default_model") if isinstance(options, dict) else None
            if default:
                names.add(f"{provider}:{default}")
        return sorted(n for n in names if n.startswith(incomplete))
    return []


def sessions(incomplete: str) -> list[str]:
    """`new`, `last` and the 20 most recent session ids."""
    out = [w for w in ("new", "last") if w.startswith(incomplete)]
    with contextlib.suppress(Exception):
        from cozy.cli._common import run_async, runtime, state

        async def recent() -> list[str]:
            async with runtime(engines=False) as rt:
                rows = await rt.store.list_sessions(state.settings().user, limit=20)
            return [r.id for r in rows]

        out += [i for i in run_async(recent) if i.startswith(incomplete)]
    return out
