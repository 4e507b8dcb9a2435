"""The terminal approval prompt: asks on the controlling terminal, whatever stdin is.

The prompt is written to and read from `/dev/tty` (so `cat notes | cozy run ...` still
asks the person at the keyboard), with the fd read from the event loop rather than a
thread: Ctrl-C cancels the wait at once and no blocked reader thread keeps the process
alive. With no controlling terminal (cron, CI, a detached process) the answer is "deny"
with a reason the user can act on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cozy.core.toolloop import Decision
    from cozy.core.types import ToolCall, ToolSpec
    from cozy.engines.base import ToolContext

TTY = "/dev/tty"
# An unanswered prompt must not hold a turn (and its MCP servers) forever.
ANSWER_TIMEOUT = float(os.environ.get("COZY_APPROVAL_TIMEOUT", "300"))
_ARGS_SHOWN = 400

# Why the last prompt could not be asked (read by the CLI to print a hint).
last_problem: str | None = None


def _describe_args(arguments: str) -> str:
    try:
        text = json.dumps(json.loads(arguments or "{}"), ensure_ascii=False)
    except ValueError:
        text = arguments
    return text if len(text) <= _ARGS_SHOWN else text[: _ARGS_SHOWN - 1] + "…"


def prompt_text(call: ToolCall, spec: ToolSpec, personality: str | None) -> str:
    who = f" for personality '{personality}'" if personality else ""
    return (
        f"\ncozy wants to run {spec.name} — a {spec.level} tool — with "
        f"{_describe_args(call.arguments)}\n"
        f"allow? [y] once / [a] always{who} / [n] no (default): "
    )


def parse_answer(answer: str) -> Decision:
    word = answer.strip().lower()
    if word in ("a", "always"):
        return "always"
    return "once" if word in ("y", "yes") else "deny"


async def _read_line(fd: int, timeout: float) -> str | None:  # noqa: ASYNC109
    """One line from `fd` (a terminal in canonical mode), None on end of file."""
    loop = asyncio.get_running_loop()
    got: asyncio.Future[bytes] = loop.create_future()

    def readable() -> None:
        if got.done():
            return
        try:
            got.set_result(os.read(fd, 4096))
        except OSError as exc:
            got.set_exception(exc)

    buf = b""
    loop.add_reader(fd, readable)
    try:
        async with asyncio.timeout(timeout):
            while b"\n" not in buf:
                chunk = await got
                if not chunk:
                    return buf.decode("utf-8", "replace") if buf else None
                buf += chunk
                got = loop.create_future()
    finally:
        loop.remove_reader(fd)
    return buf.decode("utf-8", "replace").split("\n", 1)[0]


async def tty_approver(call: ToolCall, spec: ToolSpec, ctx: ToolContext) -> Decision:
    """Ask the person at the controlling terminal whether a tool may run."""
    global last_problem
    try:
        fd = os.open(TTY, os.O_RDWR | os.O_NOCTTY)
    except OSError:
        last_problem = "no terminal to ask on"
        return "deny"
    try:
        os.write(fd, prompt_text(call, spec, ctx.personality_id).encode())
        try:
            line = await _read_line(fd, ANSWER_TIMEOUT)
        except TimeoutError:
            os.write(fd, f"\nno answer within {ANSWER_TIMEOUT:g} s: denied\n".encode())
            last_problem = "the prompt was not answered in time"
            return "deny"
        except asyncio.CancelledError:
            with contextlib.suppress(OSError):
                os.write(fd, b"\n")
            raise
        if line is None:
            last_problem = "the terminal closed"
            return "deny"
        decision = parse_answer(line)
        if decision == "deny":
            last_problem = "you answered no"
        return decision
    finally:
        os.close(fd)


def _field_line(name: str, prop: dict[str, Any], required: bool) -> str:
    kind = prop.get("type", "string")
    choices = prop.get("enum")
    parts = [str(kind)]
    if choices:
        parts.append("one of " + ", ".join(str(c) for c in choices))
    if required:
        parts.append("required")
    desc = prop.get("description") or prop.get("title") or ""
    return f"  {name} ({'; '.join(parts)}){f' — {desc}' if desc else ''}: "


def _convert(raw: str, prop: dict[str, Any]) -> Any:
    kind = prop.get("type", "string")
    if kind == "boolean":
        return raw.strip().lower() in ("y", "yes", "true", "1")
    if kind == "integer":
        return int(raw)
    if kind == "number":
        return float(raw)
    return raw


async def tty_elicitor(
    server: str, message: str, schema: dict[str, Any]
) -> tuple[str, dict[str, Any] | None]:
    """An MCP server's form (elicitation), asked field by field on the terminal."""
    global last_problem
    try:
        fd = os.open(TTY, os.O_RDWR | os.O_NOCTTY)
    except OSError:
        last_problem = "no terminal to ask on"
        return "decline", None
    try:
        os.write(fd, f"\nMCP server '{server}' asks: {message}\nanswer? [y/N]: ".encode())
        line = await _read_line(fd, ANSWER_TIMEOUT)
        if line is None or parse_answer(line) == "deny":
            return "decline", None
        props: dict[str, Any] = schema.get("properties") or {}
        required = set(schema.get("required") or [])
        content: dict[str, Any] = {}
        for name, prop in props.items():
            while True:
                os.write(fd, _field_line(name, prop, name in required).encode())
                raw = await _read_line(fd, ANSWER_TIMEOUT)
                if raw is None:
                    return "cancel", None
                if not raw.strip() and name not in required:
                    break
                try:
                    content[name] = _convert(raw.strip(), prop)
                except ValueError:
                    os.write(fd, f"  not a valid {prop.get('type')}; again\n".encode())
                    continue
                break
        return "accept", content
    except TimeoutError:
        return "cancel", None
    finally:
        os.close(fd)
