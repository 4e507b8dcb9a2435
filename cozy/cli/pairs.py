"""`-o KEY VALUE` style options (two words each, repeatable), as llm users type them.

typer has no option that takes two values and repeats, so the command class makes its
click options take two at parse time (duck-typed: newer typer runs its own copy of
click). typer's `list[str]` conversion then hands each pair over as the text of a
Python tuple, `('temperature', '0.2')`, which `pairs()` reads back (literal_eval: no
code runs); a real tuple, as another typer version may pass, is taken as it is.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from typing import Any

from typer.core import TyperCommand

PAIRED = ("option", "param", "default")


_KEY_VALUE = re.compile(r"^([A-Za-z_][\w-]*)=(.*)$", re.S)


class PairsCommand(TyperCommand):
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        flags: set[str] = set()
        for p in self.params:
            if getattr(p, "param_type_name", "") == "option" and p.name in PAIRED:
                p.nargs = 2
                flags.update(p.opts)
        rest: list[str] = super().parse_args(ctx, split_key_values(args, flags))
        return rest


def split_key_values(args: list[str], flags: set[str]) -> list[str]:
    """`-o temperature=0.2` as `-o temperature 0.2` (the form the issue tracker and
    aichat users type), so both spellings work; after `--` nothing is touched."""
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        out.append(arg)
        if arg == "--":
            out.extend(args[i + 1 :])
            break
        m = _KEY_VALUE.match(args[i + 1]) if arg in flags and i + 1 < len(args) else None
        if m:
            out += [m[1], m[2]]
            i += 1
        i += 1
    return out


def pairs(values: Sequence[Any] | None) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for v in values or []:
        pair = ast.literal_eval(v) if isinstance(v, str) else v
        key, val = pair
        out.append((str(key), str(val)))
    return out
