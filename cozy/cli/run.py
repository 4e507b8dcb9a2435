"""`cozy run`: one-shot prompts for the terminal and for scripts."""

from __future__ import annotations

import gc
import json
import os
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cozy.cli._common import fail, run_async, runtime, state

if TYPE_CHECKING:
    from cozy.core.events import ChatEvent
    from cozy.core.toolloop import Decision
    from cozy.core.types import ToolCall, ToolSpec
    from cozy.engines.base import ToolContext

MAX_PROMPT_CHARS = int(os.environ.get("COZY_MAX_PROMPT_CHARS", str(8 * 1024 * 1024)))


def read_prompt(words: list[str] | None) -> str:
    """Prompt from arguments, stdin, or both (arguments first, then stdin)."""
    parts = [" ".join(words)] if words else []
    if not sys.stdin.isatty():
        data = sys.stdin.buffer.read(MAX_PROMPT_CHARS * 4 + 1)
        text = data.decode("utf-8", errors="replace")
        if text.strip():
            parts.append(text)
    prompt = "\n\n".join(p for p in parts if p.strip())
    if len(prompt) > MAX_PROMPT_CHARS:
        raise typer.BadParameter(
            f"the prompt is {len(prompt):,} characters; the limit is {MAX_PROMPT_CHARS:,} "
            "(set COZY_MAX_PROMPT_CHARS, or add the text with `cozy knowledge add`)"
        )
    return prompt


async def tty_approver(call: ToolCall, spec: ToolSpec, ctx: ToolContext) -> Decision:
    """Ask on the terminal (even when stdin is a pipe) whether a tool may run."""
    import asyncio

    def ask() -> Decision:
        try:
            with open("/dev/tty", "r+", encoding="utf-8") as tty:
                tty.write(
                    f"\ncozy wants to run {spec.name} ({spec.level}) with {call.arguments}\n"
                    "allow? [y]es once / [a]lways for this personality / [N]o: "
                )
                tty.flush()
                answer = tty.readline().strip().lower()
        except OSError:
            return "deny"
        if answer in ("a", "always"):
            return "always"
        return "once" if answer in ("y", "yes") else "deny"

    return await asyncio.to_thread(ask)


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run_cmd(
        prompt: Annotated[list[str] | None, typer.Argument(help="the prompt (or stdin)")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="one JSON object on stdout")] = False,
        stream: Annotated[bool, typer.Option("--stream", help="with --json: JSON lines")] = False,
        session: Annotated[str, typer.Option("--session", "-s", help="new, last or an id")] = "new",
        personality: Annotated[str | None, typer.Option("--personality", "-p")] = None,
        model: Annotated[
            str | None, typer.Option("--model", "-m", help="provider:model or alias")
        ] = None,
        system: Annotated[
            str | None, typer.Option("--system", help="extra system instructions")
        ] = None,
        no_context: Annotated[
            bool, typer.Option("--no-context", help="skip memory, profile and knowledge")
        ] = False,
        allow_tools: Annotated[
            list[str] | None, typer.Option("--allow-tools", help="tool globs allowed (repeat)")
        ] = None,
        yes: Annotated[bool, typer.Option("--yes", "-y", help="approve allowed tools")] = False,
    ) -> None:
        """Send one prompt and print the answer (streamed), or JSON with --json."""
        try:
            text = read_prompt(prompt)
        except typer.BadParameter as exc:
            fail(str(exc), code=2, as_json=as_json, kind="invalid_request_error")
        if not text.strip():
            fail(
                "the prompt is empty: pass it as an argument or on stdin "
                '(e.g. `cozy run "hello"` or `echo hello | cozy run`)',
                code=2,
                as_json=as_json,
                kind="invalid_request_error",
            )
        # Start-up makes ~100k long-lived objects (imports): collecting them while they
        # are made is wasted work (~15% of a one-shot run). Once the turn has started they
        # are frozen (kept out of every later collection) and collection is on again.
        gc.disable()
        try:
            code = run_async(
                lambda: _run(
                    text,
                    as_json,
                    stream,
                    session,
                    personality,
                    model,
                    system,
                    no_context,
                    allow_tools,
                    yes,
                ),
                as_json=as_json,
            )
        finally:
            gc.unfreeze()  # as it was (matters when called in-process, e.g. by tests)
            gc.enable()
        if code:
            raise typer.Exit(code)


async def _run(  # noqa: C901 - one fold of every event kind into text, JSON or JSON lines
    text: str,
    as_json: bool,
    stream: bool,
    session: str,
    personality: str | None,
    model: str | None,
    system: str | None,
    no_context: bool,
    allow_tools: list[str] | None,
    yes: bool,
) -> int:
    from cozy.core.events import ContextBuilt, Done, Failed, TextDelta, ToolCallRequested
    from cozy.core.events import ToolResult as ToolResultEvent
    from cozy.core.orchestrator import ChatRequest
    from cozy.core.types import Caller

    settings = state.settings()
    caller = Caller(
        user_id=settings.user, role="admin", face="cli", allowed_tools=allow_tools, auto_approve=yes
    )
    approver = None if (yes or as_json) else tty_approver
    req = ChatRequest(
        prompt=text,
        caller=caller,
        session=session,
        personality=personality,
        model=model or settings.model,
        system=system,
        no_context=no_context,
        approver=approver,
    )
    out = sys.stdout
    folded: dict[str, Any] = {"context": {}, "tool_calls": [], "tool_results": []}
    async with runtime() as rt:
        async for event in rt.orchestrator.run(req):
            if not gc.isenabled():  # the turn has started: every import is done
                gc.freeze()
                gc.enable()
            if as_json and stream:
                out.write(json.dumps(_event_dict(event), default=str) + "\n")
                out.flush()
            elif isinstance(event, TextDelta) and not as_json:
                out.write(event.text)
                out.flush()
            elif isinstance(event, ContextBuilt):
                folded["context"] = event.metadata
                if not as_json and event.metadata.get("degraded"):
                    reasons = "; ".join(event.metadata.get("degrade_reasons", []))
                    sys.stderr.write(f"[context degraded: {reasons}]\n")
            elif isinstance(event, ToolCallRequested):
                folded["tool_calls"].append(_event_dict(event)["call"])
                if not as_json:
                    sys.stderr.write(f"[tool {event.call.name} {event.call.arguments}]\n")
            elif isinstance(event, ToolResultEvent):
                folded["tool_results"].append(_event_dict(event))
            if isinstance(event, Failed):
                if not (as_json and stream):
                    if as_json:
                        error = event.error.to_dict()
                        out.write(json.dumps({"error": error, "session_id": event.session_id}))
                        out.write("\n")
                    if not as_json and folded.get("started"):
                        out.write("\n")
                    sys.stderr.write(f"error: {event.error.message}\n")
                return event.error.exit_code
            if isinstance(event, TextDelta):
                folded["started"] = True
            if isinstance(event, Done):
                if as_json and not stream:
                    out.write(
                        json.dumps(_fold(event, folded), default=str, ensure_ascii=False) + "\n"
                    )
                elif not as_json:
                    out.write("\n")
    return 0


def _event_dict(event: ChatEvent) -> dict[str, Any]:
    data = event.to_dict()
    call = data.get("call")
    if isinstance(call, dict):
        data["call"] = {k: call[k] for k in ("id", "name", "arguments")}
    return data


def _fold(done: Any, folded: dict[str, Any]) -> dict[str, Any]:
    ctx = folded["context"]
    return {
        "session_id": done.session_id,
        "message_id": done.message_id,
        "model": done.model,
        "text": done.text,
        "status": done.status,
        "finish_reason": done.finish_reason,
        "usage": done.usage,
        "timings": done.timings,
        "context": {
            k: ctx.get(k)
            for k in (
                "enabled_engines",
                "degraded",
                "degrade_reasons",
                "memory_ids",
                "profile_slots",
                "knowledge",
            )
        },
        "tool_calls": folded["tool_calls"],
        "tool_results": folded["tool_results"],
    }
