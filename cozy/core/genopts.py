"""Per-run generation options from `KEY VALUE` pairs (`cozy run -o temperature 0.2`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from cozy.core.errors import UsageError
from cozy.core.types import GenerationOptions


def _unit(value: str) -> float:
    number = float(value)
    if not 0.0 <= number <= 2.0:
        raise ValueError("between 0 and 2")
    return number


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError("1 or more")
    return number


# name -> (parse, what it takes): the options every provider understands
KNOWN: dict[str, tuple[Callable[[str], Any], str]] = {
    "temperature": (_unit, "a number from 0 to 2"),
    "top_p": (float, "a number from 0 to 1"),
    "max_tokens": (_positive, "a whole number, 1 or more"),
    "seed": (int, "a whole number"),
    "stop": (str, "text (repeat -o stop for more)"),
}


def parse(pairs: Iterable[tuple[str, str]]) -> GenerationOptions | None:
    """Validated options; an unknown name or a bad value names what would work."""
    opts = GenerationOptions()
    seen = False
    for key, value in pairs:
        name = key.strip().lower().replace("-", "_")
        if name not in KNOWN:
            raise UsageError(
                f"unknown option '{key}'",
                hint=f"use one of {', '.join(sorted(KNOWN))} (e.g. -o temperature 0.2)",
            )
        parse_one, takes = KNOWN[name]
        try:
            parsed = parse_one(value)
        except ValueError:
            raise UsageError(
                f"option {name}: '{value}' is not {takes}", hint=f"e.g. -o {name} {_example(name)}"
            ) from None
        seen = True
        if name == "stop":
            opts.stop = [*(opts.stop or []), parsed]
        else:
            setattr(opts, name, parsed)
    return opts if seen else None


def _example(name: str) -> str:
    return {"temperature": "0.2", "top_p": "0.9", "stop": "END"}.get(name, "50")
