"""`cozy run`: one-shot prompts for the terminal and for scripts."""

from __future__ import annotations

import gc
import json
import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cozy.cli import complete
from cozy.cli._common import run_async, runtime, state

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
        # the newline a shell or `echo` ends the input with is not part of the prompt
        text = data.decode("utf-8", errors="replace").rstrip("\r\n")
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
    """Ask on the controlling terminal (see cozy.cli.approve)."""
    from cozy.cli.approve import tty_approver as ask

    return await ask(call, spec, ctx)


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run_cmd(
        prompt: Annotated[list[str] | None, typer.Argument(help="the prompt (or stdin)")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="one JSON object on stdout")] = False,
        stream: Annotated[bool, typer.Option("--stream", help="with --json: JSON lines")] = False,
        session: Annotated[
            str,
            typer.Option(
                "--session",
                "-s",
                help="new, last, or an id (or its start)",
                autocompletion=complete.sessions,
            ),
        ] = "new",
        continue_: Annotated[
            bool, typer.Option("--continue", "-c", help="continue the last session (= -s last)")
        ] = False,
        personality: Annotated[
            str | None,
            typer.Option("--personality", "-p", autocompletion=complete.personalities),
        ] = None,
        model: Annotated[
            str | None,
            typer.Option(
                "--model", "-m", help="provider:model or alias", autocompletion=complete.models
            ),
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
        yes: Annotated[
            bool,
            typer.Option("--yes", "-y", help="approve the write/network tools --allow-tools names"),
        ] = False,
        yes_dangerous: Annotated[
            bool,
            typer.Option("--yes-dangerous", help="with --yes: approve dangerous ones too"),
        ] = False,
        mcp_prompt: Annotated[
            str | None,
            typer.Option(
                "--prompt",
                help="an MCP prompt, SERVER.NAME; leading key=value words are its arguments",
            ),
        ] = None,
        resource: Annotated[
            list[str] | None,
            typer.Option("--resource", help="attach an MCP resource SERVER:URI (repeat)"),
        ] = None,
    ) -> None:
        """Send one prompt and print the answer (streamed), or JSON with --json."""
        out = RunOutput(as_json, stream)
        if continue_ and session == "new":
            session = "last"
        prompt_args: list[str] = []
        if mcp_prompt:  # `--prompt srv.name city=Paris extra words`
            from cozy.core.mcp_input import split_words

            prompt_args, prompt = split_words(list(prompt or []))
        try:
            text = read_prompt(prompt)
        except typer.BadParameter as exc:
            raise typer.Exit(out.error(_usage(str(exc)), code=2)) from None
        if (yes or yes_dangerous) and not allow_tools:
            raise typer.Exit(
                out.error(
                    _usage(
                        "--yes approves only the tools --allow-tools names; add --allow-tools "
                        "GLOB (e.g. --allow-tools 'fs.*' --yes), or leave --yes out to be asked"
                    ),
                    code=2,
                )
            )
        if not text.strip() and not mcp_prompt:
            raise typer.Exit(
                out.error(
                    _usage(
                        "the prompt is empty: pass it as an argument or on stdin "
                        '(e.g. `cozy run "hello"` or `echo hello | cozy run`)'
                    ),
                    code=2,
                )
            )
        # Start-up makes ~100k long-lived objects (imports): collecting them while they
        # are made is wasted work (~15% of a one-shot run). Once the turn has started they
        # are frozen (kept out of every later collection) and collection is on again.
        gc.disable()
        try:
            code = run_async(
                lambda: _run(
                    text,
                    out,
                    session,
                    personality,
                    model,
                    system,
                    no_context,
                    allow_tools,
                    Approval(yes or yes_dangerous, yes_dangerous),
                    McpInput((mcp_prompt, prompt_args) if mcp_prompt else None, resource or []),
                ),
                as_json=False,  # `out` prints the JSON error object (stream: an event)
            )
        except typer.Exit as exc:
            if exc.exit_code == 130:  # Ctrl-C: the promised JSON error, partial text
                out.interrupted()
            raise
        finally:
            gc.unfreeze()  # as it was (matters when called in-process, e.g. by tests)
            gc.enable()
        start_background_jobs()
        if code:
            raise typer.Exit(code)


@dataclass(slots=True)
class Approval:
    yes: bool = False  # write/network tools --allow-tools names
    dangerous: bool = False  # ... and dangerous ones


@dataclass(slots=True)
class McpInput:
    """`--prompt SERVER.NAME k=v...` and `--resource SERVER:URI` for the turn."""

    prompt: tuple[str, list[str]] | None = None
    resources: list[str] = field(default_factory=list)


def _usage(message: str) -> dict[str, Any]:
    return {"type": "invalid_request_error", "code": "invalid_request", "message": message}


class RunOutput:
    """What `cozy run` has printed so far, so that every ending prints exactly one
    final JSON object (`--json`) or one `done`/`error` event (`--json --stream`)."""

    def __init__(self, as_json: bool, stream: bool) -> None:
        self.as_json = as_json
        self.stream = as_json and stream
        self.session_id: str | None = None
        self.text: list[str] = []
        self.started = False  # text reached a terminal (plain mode)
        self.closed = False
        self.tool_calls: list[dict[str, Any]] = []

    def event(self, data: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(data, default=str) + "\n")
        sys.stdout.flush()

    def error(self, error: dict[str, Any], *, code: int, message_id: str | None = None) -> int:
        """One error ending (a Failed event, a cozy error, Ctrl-C); returns the exit code."""
        if self.closed:
            return code
        self.closed = True
        if self.stream:
            self.event(
                {
                    "type": "error",
                    "error": error,
                    "session_id": self.session_id,
                    "message_id": message_id,
                }
            )
        elif self.as_json:
            body: dict[str, Any] = {"error": error, "session_id": self.session_id}
            if error.get("code") == "cancelled":
                body.update(
                    text="".join(self.text), status="interrupted", tool_calls=self.tool_calls
                )
            self.event(body)
        elif self.started:
            sys.stdout.write("\n")
        sys.stderr.write(f"error: {error.get('message')}\n")
        return code

    def show(self, event: ChatEvent, folded: dict[str, Any]) -> None:
        """A non-final event: an event line (stream), text (plain), or folded (JSON)."""
        from cozy.core.events import ContextBuilt, TextDelta, ToolCallRequested, ToolResult

        if isinstance(event, TextDelta):
            self.text.append(event.text)
            if not self.as_json:
                sys.stdout.write(event.text)
                sys.stdout.flush()
                self.started = True
        if self.stream:
            self.event(_event_dict(event))
        elif isinstance(event, ContextBuilt):
            folded["context"] = event.metadata
            if not self.as_json and event.metadata.get("degraded"):
                reasons = "; ".join(event.metadata.get("degrade_reasons", []))
                sys.stderr.write(f"[context degraded: {reasons}]\n")
        elif isinstance(event, ToolCallRequested | ToolResult):
            self._tool(event, folded)
        if isinstance(event, ToolCallRequested):
            self.tool_calls.append(_event_dict(event)["call"])

    def _tool(self, event: ChatEvent, folded: dict[str, Any]) -> None:
        from cozy.core.events import ToolCallRequested

        data = _event_dict(event)
        if isinstance(event, ToolCallRequested):
            folded["tool_calls"].append(data["call"])
            if not self.as_json:
                sys.stderr.write(f"[tool {event.call.name} {event.call.arguments}]\n")
            return
        folded["tool_results"].append(data)
        if not self.as_json and data.get("is_error") and data.get("decision") == "deny":
            from cozy.cli import approve

            why = f" ({approve.last_problem})" if approve.last_problem else ""
            sys.stderr.write(f"[tool {data.get('name')} not run: denied{why}]\n")

    def interrupted(self) -> None:
        if self.closed:
            return
        where = f" (kept in session {self.session_id})" if self.session_id else ""
        self.error(
            {
                "type": "cancelled",
                "code": "cancelled",
                "message": f"interrupted; the partial answer was saved as interrupted{where}",
            },
            code=130,
        )


async def _run(
    text: str,
    out: RunOutput,
    session: str,
    personality: str | None,
    model: str | None,
    system: str | None,
    no_context: bool,
    allow_tools: list[str] | None,
    yes: Approval,
    mcp: McpInput,
) -> int:
    import asyncio

    from cozy.core.errors import CozyError

    try:
        return await _turn(
            text, out, session, personality, model, system, no_context, allow_tools, yes, mcp
        )
    except CozyError as exc:  # before or around the turn (config, storage, ...)
        return out.error(exc.to_dict(), code=exc.exit_code)
    except asyncio.CancelledError:  # Ctrl-C: the orchestrator saved the partial answer
        out.interrupted()
        raise


async def _turn(
    text: str,
    out: RunOutput,
    session: str,
    personality: str | None,
    model: str | None,
    system: str | None,
    no_context: bool,
    allow_tools: list[str] | None,
    yes: Approval,
    mcp: McpInput,
) -> int:
    import contextlib

    from cozy.core.errors import CozyError
    from cozy.core.events import Done, Failed, Started
    from cozy.core.orchestrator import ChatRequest
    from cozy.core.types import Caller

    as_json, stream = out.as_json, out.stream
    settings = state.settings()
    caller = Caller(
        user_id=settings.user,
        role="admin",
        face="cli",
        allowed_tools=allow_tools,
        auto_approve=yes.yes,
        auto_approve_dangerous=yes.dangerous,
    )
    stdout = sys.stdout
    folded: dict[str, Any] = {"context": {}, "tool_calls": [], "tool_results": []}
    async with runtime() as rt:
        if mcp.prompt or mcp.resources:
            text = await _with_mcp(rt, text, mcp, folded)
        req = ChatRequest(
            prompt=text,
            caller=caller,
            session=session,
            personality=personality,
            model=model or settings.model,
            system=system,
            no_context=no_context,
            # asks on /dev/tty even with --json (stdout stays JSON); no terminal: denied
            approver=tty_approver,
            elicitor=tty_elicitor,
        )
        async for event in rt.orchestrator.run(req):
            if not gc.isenabled():  # the turn has started: every import is done
                gc.freeze()
                gc.enable()
            if isinstance(event, Started):
                out.session_id = event.session_id
                folded["provider"] = {
                    "name": event.model.split(":", 1)[0],
                    "reason": event.provider_reason,
                }
            if isinstance(event, Failed):
                out.session_id = event.session_id or out.session_id
                if session == "new" and out.session_id and not out.text:
                    # a session that only holds a failed question is not kept in the list
                    # (soft delete: `cozy sessions restore ID` brings it back, nothing lost)
                    # best effort: the turn's own error is the one to report (on a full
                    # disk the session was never stored, and deleting it fails too)
                    with contextlib.suppress(CozyError):
                        await rt.store.delete_session(out.session_id, settings.user)
                        sys.stderr.write(
                            f"(the question is kept: `cozy sessions restore {out.session_id}`)\n"
                        )
                return out.error(
                    event.error.to_dict(), code=event.error.exit_code, message_id=event.message_id
                )
            out.show(event, folded)
            if isinstance(event, Done):
                out.closed = True
                notice = rt.tiny_model_notice(event.model) if not stream else None
                if as_json and not stream:
                    folded["notice"] = notice
                    stdout.write(
                        json.dumps(_fold(event, folded), default=str, ensure_ascii=False) + "\n"
                    )
                elif not as_json:
                    stdout.write("\n")
                    stdout.flush()
                    if notice:
                        sys.stderr.write(f"[note: {notice}]\n")
    if not out.closed:  # the stream ended without Done or Failed: say so, never end silently
        return out.error(
            {"type": "server_error", "code": "incomplete", "message": "the answer ended early"},
            code=1,
        )
    return 0


async def tty_elicitor(
    server: str, message: str, schema: dict[str, Any]
) -> tuple[str, dict[str, Any] | None]:
    from cozy.cli.approve import tty_elicitor as ask

    return await ask(server, message, schema)


async def _with_mcp(rt: Any, text: str, mcp: McpInput, folded: dict[str, Any]) -> str:
    """The turn's text with the MCP prompt rendered and resources attached."""
    from cozy.core.mcp_input import attach_resources, read_ref, render_prompt

    engine = rt.orchestrator.tools.engine
    if mcp.prompt:
        rendered = await render_prompt(engine, *mcp.prompt)
        text = f"{rendered}\n\n{text}" if text.strip() else rendered
    attached = [await read_ref(engine, ref) for ref in mcp.resources]
    if attached:
        text = attach_resources(text, attached)
        folded["resources"] = [
            {"ref": f"{r.server}:{r.uri}", "chars": len(r.text), "truncated": r.truncated}
            for r in attached
        ]
    return text


def start_background_jobs() -> None:
    """Memory extraction and profile updates for people who only use `cozy run`.

    The turn queued durable jobs; instead of waiting for them (a model call each,
    seconds with a local model) the answer is printed first and a detached `cozy jobs
    run --background` drains them after this process exits. It holds a lock in the
    data dir, so runs in a row start at most one; COZY_BACKGROUND_JOBS=0 turns it off
    (the jobs then wait for `cozy jobs run`, the TUI or the server).
    """
    from cozy.storage.jobs import queued_count

    if not queued_count():
        return
    settings = state.settings()
    if not settings.background_jobs or settings.redis_url or settings.database_url:
        return  # server mode: the server's own workers run the jobs
    from cozy.cli.jobs import spawn_background_worker

    spawn_background_worker(settings, state.overrides)


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
        "provider": folded.get("provider"),
        "notice": folded.get("notice"),
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
        "resources": folded.get("resources", []),
    }
