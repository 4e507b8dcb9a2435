"""`-o KEY VALUE` style options (two words each, repeatable), as llm users type them.

typer has no option that takes two values and repeats, so the command class makes its
click options take two at parse time (duck-typed: newer typer runs its own copy of
click). typer's `list[str]` conversion then hands each pair over as the text of a
Python tuple, `('temperature', '0.2')`, which `pairs()` reads back (literal_eval: no
code runs); a real tuple, as another typer version may pass, is taken as it is.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from typing import Any

from typer.core import TyperCommand

PAIRED = ("option", "param", "default")


class PairsCommand(TyperCommand):
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        for p in self.params:
            if getattr(p, "param_type_name", "") == "option" and p.name in PAIRED:
                p.nargs = 2
        rest: list[str] = super().parse_args(ctx, args)
        return rest


def pairs(values: Sequence[Any] | None) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for v in values or []:
        pair = ast.literal_eval(v) if isinstance(v, str) else v
        key, val = pair
        out.append((str(key), str(val)))
    return out
