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
from typing import TYPE_CHECKING

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
