"""`cozy usage [--user NAME] [--days N] [--json]`: tokens (and spend) per day and model."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from cozy.cli._common import print_json, run_async, runtime


def register(app: typer.Typer) -> None:
    @app.command("usage")
    def usage_cmd(
        user: Annotated[
            str | None, typer.Option("--user", help="one user (default: every user)")
        ] = None,
        days: Annotated[int, typer.Option("--days", min=1, help="how far back")] = 30,
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """Tokens used per day, user and model; spend where `ai.prices` has the model."""

        async def go() -> None:
            from cozy.storage.usage import usage_by_day

            async with runtime(engines=False) as rt:
                rows = await usage_by_day(rt.store, user_id=user, days=days)
                ai = rt.config.ai
            out: list[dict[str, Any]] = []
            for r in rows:
                price = ai.price(r.model)
                cost = None
                if price is not None:
                    cost = r.prompt_tokens * price.input + r.completion_tokens * price.output
                    cost = round(cost / 1_000_000, 6)
                out.append(
                    {
                        "day": r.day,
                        "user": r.user_id,
                        "model": r.model,
                        "requests": r.requests,
                        "prompt_tokens": r.prompt_tokens,
                        "completion_tokens": r.completion_tokens,
                        "total_tokens": r.total_tokens,
                        "usd": cost,
                    }
                )
            if as_json:
                print_json(out)
                return
            if not out:
                sys.stderr.write(f"no answers in the last {days} days\n")
                return
            sys.stdout.write(
                "day         user          model                    requests  tokens     usd\n"
            )
            for o in out:
                usd = f"{o['usd']:.4f}" if o["usd"] is not None else "-"
                sys.stdout.write(
                    f"{o['day']}  {o['user'][:12]:<12}  {o['model'][:24]:<24} "
                    f"{o['requests']:>8}  {o['total_tokens']:>9,}  {usd}\n"
                )

        run_async(go, as_json=as_json)
