"""The `builtin` tools provider: tools implemented in cozy itself.

`builtin.now` ships here. Other engines contribute tools (memory.remember,
knowledge.search, ...) through `register_builtin(spec, fn)` (declared for every
instance) or `BuiltinTools.register(spec, fn)` (one instance, e.g. a closure over
an engine built by the runtime). A tool function receives (arguments, ToolContext)
and returns text, any JSON-able value, or a ToolOutput.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cozy.core.errors import ToolError
from cozy.core.types import ToolOutput, ToolSpec
from cozy.engines.base import EngineContext, EngineOptions, Health, ToolContext, ToolsEngine
from cozy.engines.tools.sandbox import (
    DEFAULT_MAX_OUTPUT_CHARS,
    cap_output,
    to_text,
    validate_arguments,
)

BuiltinFn = Callable[[dict[str, Any], ToolContext], Awaitable[Any]]


@dataclass(slots=True)
class BuiltinTool:
    spec: ToolSpec
    fn: BuiltinFn


_DECLARED: dict[str, BuiltinTool] = {}


def register_builtin(spec: ToolSpec, fn: BuiltinFn, *, replace: bool = False) -> None:
    """Declare a built-in tool for every BuiltinTools instance created afterwards."""
    if spec.name in _DECLARED and not replace:
        raise ToolError(
            f"built-in tool '{spec.name}' is already registered",
            hint="pick another name or pass replace=True",
        )
    spec.server = "builtin"
    _DECLARED[spec.name] = BuiltinTool(spec, fn)


def unregister_builtin(name: str) -> None:
    _DECLARED.pop(name, None)


def declared_builtins() -> dict[str, BuiltinTool]:
    return dict(_DECLARED)


async def _now(arguments: dict[str, Any], ctx: ToolContext) -> ToolOutput:
    tz_name = arguments.get("timezone")
    if tz_name:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            tz = ZoneInfo(str(tz_name))
        except (ZoneInfoNotFoundError, ValueError):
            return ToolOutput(
                f"unknown timezone '{tz_name}': use an IANA name such as 'Europe/Paris' "
                "or 'America/New_York', or omit it for local time",
                is_error=True,
            )
        now = datetime.now(tz)
        label = str(tz_name)
    else:
        now = datetime.now().astimezone()
        label = now.tzname() or "local"
    text = to_text(
        {
            "datetime": now.isoformat(timespec="seconds"),
            "date": now.date().isoformat(),
            "time": now.strftime("%H:%M:%S"),
            "weekday": now.strftime("%A"),
            "timezone": label,
            "utc_offset": now.strftime("%z"),
        }
    )
    return ToolOutput(text)


NOW_SPEC = ToolSpec(
    name="builtin.now",
    description="Current date and time. Optional `timezone` (IANA name, e.g. 'Europe/Paris'); "
    "local time when omitted.",
    parameters={
        "type": "object",
        "properties": {
            "timezone": {"type": "string", "description": "IANA timezone name"},
        },
        "additionalProperties": False,
    },
    level="read-only",
    server="builtin",
)


class BuiltinOptions(EngineOptions):
    timeout: float = 30.0  # seconds a tool call may take
    max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS
    disabled: tuple[str, ...] = ()  # tool names left out


class BuiltinTools(ToolsEngine):
    """Options: `timeout` (s, default 30), `max_output_chars`, `disabled` (tool names)."""

    Options = BuiltinOptions

    provider_name = "builtin"

    def __init__(
        self, options: dict[str, Any] | None = None, ctx: EngineContext | None = None
    ) -> None:
        super().__init__(options, ctx)
        self._tools: dict[str, BuiltinTool] = {NOW_SPEC.name: BuiltinTool(NOW_SPEC, _now)}
        self._tools.update(_DECLARED)
        o = BuiltinOptions.of(self.options, "tools")
        for name in o.disabled:
            self._tools.pop(name, None)
        self.timeout = o.timeout
        self.max_output_chars = o.max_output_chars

    def register(self, spec: ToolSpec, fn: BuiltinFn, *, replace: bool = True) -> None:
        """Add a tool to this instance only (e.g. a closure over a live engine)."""
        if spec.name in self._tools and not replace:
            raise ToolError(f"built-in tool '{spec.name}' is already registered")
        spec.server = "builtin"
        self._tools[spec.name] = BuiltinTool(spec, fn)

    register_builtin = register

    def has_tool(self, name: str) -> bool:
        return name in self._tools

    async def list_tools(self) -> list[ToolSpec]:
        return [t.spec for t in self._tools.values()]

    async def health_check(self) -> Health:
        return Health(ok=True, detail=f"{len(self._tools)} built-in tools")

    async def execute_tool(
        self, name: str, arguments: dict[str, Any], ctx: ToolContext
    ) -> ToolOutput:
        start = time.perf_counter()
        out = await self._execute(name, arguments, ctx)
        out.duration_ms = (time.perf_counter() - start) * 1000
        return out

    async def _execute(self, name: str, arguments: dict[str, Any], ctx: ToolContext) -> ToolOutput:
        tool = self._tools.get(name)
        if tool is None:
            known = ", ".join(sorted(self._tools)) or "none"
            return ToolOutput(
                f"unknown tool '{name}'; available built-in tools: {known}", is_error=True
            )
        problem = validate_arguments(tool.spec.parameters, arguments)
        if problem:
            return ToolOutput(f"{name}: {problem}", is_error=True)
        try:
            async with asyncio.timeout(self.timeout if self.timeout > 0 else None):
                result = await tool.fn(arguments, ctx)
        except TimeoutError:
            return ToolOutput(f"{name} timed out after {self.timeout:g} s", is_error=True)
        except Exception as exc:
            return ToolOutput(f"{name} failed: {type(exc).__name__}: {exc}", is_error=True)
        out = result if isinstance(result, ToolOutput) else ToolOutput(to_text(result))
        out.content, cut = cap_output(out.content, self.max_output_chars)
        out.truncated = out.truncated or cut
        return out
