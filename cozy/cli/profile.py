"""`cozy profile`: show, set topic.slot VALUE, rm topic.slot, history."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from cozy.cli._common import (
    JSON_OPT,
    capable,
    console,
    print_json,
    run_async,
    runtime,
    state,
    when,
)

if TYPE_CHECKING:
    from cozy.engines.capabilities import ManagesProfileSlots
    from cozy.runtime import Runtime

profile_app = typer.Typer(help="Your profile (topic.slot values) that cozy keeps for prompts.")


async def _engine(rt: Runtime) -> ManagesProfileSlots:
    from cozy.engines.capabilities import ManagesProfileSlots

    return await capable(rt, "profile", ManagesProfileSlots)


def register(app: typer.Typer) -> None:
    app.add_typer(profile_app, name="profile")


@profile_app.command("show")
def show_cmd(as_json: Annotated[bool, JSON_OPT] = False) -> None:
    """The profile slots, with confidence and when they changed."""

    async def go() -> None:
        async with runtime() as rt:
            rows = await (await _engine(rt)).slots(state.settings().user)
        if as_json:
            print_json(rows)
            return
        if not rows:
            console().print("the profile is empty — try `cozy profile set basic_info.name Ada`")
            return
        for r in rows:
            console().print(
                f"{r['topic']}.{r['slot']}: [bold]{r['value']}[/]  "
                f"[dim](confidence {r['confidence']:.2f}, {when(r['updated_at'])})[/]"
            )

    run_async(go, as_json=as_json)


@profile_app.command("set")
def set_cmd(
    key: Annotated[str, typer.Argument(help="topic.slot, e.g. basic_info.name")],
    value: Annotated[str, typer.Argument(help="the value")],
) -> None:
    """Set a slot (the old value stays in the history)."""

    async def go() -> None:
        async with runtime() as rt:
            await (await _engine(rt)).set_slot(state.settings().user, key, value)
        console().print(f"set {key}")

    run_async(go)


@profile_app.command("rm")
def rm_cmd(key: Annotated[str, typer.Argument(help="topic.slot")]) -> None:
    """Remove a slot (kept in the history)."""

    async def go() -> None:
        async with runtime() as rt:
            await (await _engine(rt)).remove_slot(state.settings().user, key)
        console().print(f"removed {key}")

    run_async(go)


@profile_app.command("history")
def history_cmd(
    key: Annotated[str | None, typer.Argument(help="only this topic.slot")] = None,
    as_json: Annotated[bool, JSON_OPT] = False,
) -> None:
    """Every change to the profile, with its reason."""

    async def go() -> None:
        async with runtime() as rt:
            rows = await (await _engine(rt)).history(state.settings().user, key)
        if as_json:
            print_json(rows)
            return
        for h in rows:
            console().print(
                f"{when(h['created_at'])}  {h['topic']}.{h['slot']:<14} {h['action']:<7} "
                f"{h['old_value'] or '-'} -> {h['new_value'] or '-'}  [dim]({h['reason']})[/]"
            )

    run_async(go, as_json=as_json)
