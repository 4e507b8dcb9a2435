"""One `cozy run` turn: the request built from the command line, the orchestrator's
events handed to `RunOutput`, the `--schema` check with its one repair round."""

from __future__ import annotations

import gc
import json
import sys
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from cozy.cli._common import runtime, state
from cozy.cli.run_output import RunOutput, event_dict, fold

if TYPE_CHECKING:
    from cozy.core.events import Done
    from cozy.core.orchestrator import ChatRequest
    from cozy.core.toolloop import Decision
    from cozy.core.types import GenerationOptions, ImagePart, ToolCall, ToolSpec
    from cozy.engines.base import ToolContext
    from cozy.storage.attach import Fragment


@dataclass(slots=True)
class Approval:
    yes: bool = False  # write/network tools --allow-tools names
    dangerous: bool = False  # ... and dangerous ones


@dataclass(slots=True)
class McpInput:
    """`--prompt SERVER.NAME k=v...` and `--resource SERVER:URI` for the turn."""

    prompt: tuple[str, list[str]] | None = None
    resources: list[str] = field(default_factory=list)


@dataclass(slots=True)
class RunArgs:
    """Everything the command line asked of the turn."""

    text: str
    session: str = "new"
    personality: str | None = None
    model: str | None = None
    system: str | None = None
    no_context: bool = False
    allow_tools: list[str] | None = None
    approval: Approval = field(default_factory=Approval)
    mcp: McpInput = field(default_factory=McpInput)
    options: GenerationOptions | None = None
    images: list[ImagePart] = field(default_factory=list)
    input_meta: dict[str, Any] | None = None
    fragments: list[Fragment] = field(default_factory=list)  # sent before `text`, kept once
    schema: dict[str, Any] | None = None  # --schema: the answer must be valid JSON for it
    tool_log_level: str = "info"  # --tool-logs


async def tty_approver(call: ToolCall, spec: ToolSpec, ctx: ToolContext) -> Decision:
    """Ask on the controlling terminal (see cozy.cli.approve)."""
    from cozy.cli.approve import tty_approver as ask

    return await ask(call, spec, ctx)


async def tty_elicitor(
    server: str, message: str, schema: dict[str, Any]
) -> tuple[str, dict[str, Any] | None]:
    from cozy.cli.approve import tty_elicitor as ask

    return await ask(server, message, schema)


async def run_turn(args: RunArgs, out: RunOutput) -> int:
    import asyncio

    from cozy.core.errors import CozyError

    try:
        return await _turn(args, out)
    except CozyError as exc:  # before or around the turn (config, storage, ...)
        return out.error(exc.to_dict(), code=exc.exit_code)
    except asyncio.CancelledError:  # Ctrl-C: the orchestrator saved the partial answer
        out.interrupted()
        raise


def _request(args: RunArgs, out: RunOutput) -> ChatRequest:
    from cozy.core.orchestrator import ChatRequest
    from cozy.core.types import Caller

    settings = state.settings()
    caller = Caller(
        user_id=settings.user,
        role="admin",
        face="cli",
        allowed_tools=args.allow_tools,
        auto_approve=args.approval.yes,
        auto_approve_dangerous=args.approval.dangerous,
    )
    options = args.options
    if args.schema is not None:
        from cozy.core.schemas import response_format
        from cozy.core.types import GenerationOptions

        options = options or GenerationOptions()
        options.response_format = response_format(args.schema)

    async def approver(call: ToolCall, spec: ToolSpec, ctx: ToolContext) -> Decision:
        out.sink.pause()  # the question needs the terminal the answer is drawn on
        return await tty_approver(call, spec, ctx)

    return ChatRequest(
        prompt=args.text,
        caller=caller,
        session=args.session,
        personality=args.personality,
        model=args.model or settings.model,
        system=args.system,
        no_context=args.no_context,
        options=options,
        # asks on /dev/tty even with --json (stdout stays JSON); no terminal: denied
        approver=approver,
        elicitor=tty_elicitor,
        images=args.images,
        input_meta=args.input_meta,
        tool_log_level=args.tool_log_level,
        fragments=args.fragments,
    )


async def _turn(args: RunArgs, out: RunOutput) -> int:
    folded: dict[str, Any] = {"context": {}, "tool_calls": [], "tool_results": []}
    # one answer, then exit: searches do not start loading the embedder (see Settings)
    state.settings().embed_cold_start = False
    async with runtime() as rt:
        if args.mcp.prompt or args.mcp.resources:
            args.text = await _with_mcp(rt, args.text, args.mcp, folded)
        if args.input_meta:
            folded["inputs"] = args.input_meta
        req = _request(args, out)
        out.hold = args.schema is not None and not out.stream
        out.begin()
        done = await _events(rt, req, out, folded)
        if isinstance(done, int):
            return done
        if args.schema is not None:
            done = await _checked(rt, req, out, folded, done, args.schema)
            if isinstance(done, int):
                return done
        out.closed = True
        _finish(rt, out, folded, done)
    return 0


async def _events(rt: Any, req: ChatRequest, out: RunOutput, folded: dict[str, Any]) -> Done | int:
    """Run one turn, showing its events; its Done event, or the exit code of its end."""
    import contextlib

    from cozy.core.errors import CozyError
    from cozy.core.events import Done, Failed, Started

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
            if req.session == "new" and event.session_id and not out.text:
                # a session that only holds a failed question is not kept in the list
                # (soft delete: `cozy sessions restore ID` brings it back, nothing lost)
                # best effort: the turn's own error is the one to report (on a full
                # disk the session was never stored, and deleting it fails too)
                with contextlib.suppress(CozyError):
                    await rt.store.delete_session(event.session_id, state.settings().user)
                    sys.stderr.write(
                        f"(the question is kept: `cozy sessions restore {event.session_id}`)\n"
                    )
            return out.error(
                event.error.to_dict(), code=event.error.exit_code, message_id=event.message_id
            )
        if isinstance(event, Done):
            return event
        out.show(event, folded)
    # the stream ended without Done or Failed: say so, never end silently
    return out.error(
        {"type": "server_error", "code": "incomplete", "message": "the answer ended early"},
        code=1,
    )


async def _checked(
    rt: Any,
    req: ChatRequest,
    out: RunOutput,
    folded: dict[str, Any],
    done: Done,
    schema: dict[str, Any],
) -> Done | int:
    """`--schema`: the answer parsed and validated, after at most one repair round
    (the model is told what was wrong, in the same session)."""
    from cozy.core.schemas import problem

    why = problem(done.text, schema)
    if why is not None:
        out.text.clear()
        repair = replace(
            req,
            prompt=f"That answer is not valid for the JSON schema: {why}. "
            "Reply with only the corrected JSON.",
            session=done.session_id,
            no_context=True,
            images=[],
            input_meta=None,
            fragments=[],
        )
        again = await _events(rt, repair, out, folded)
        if isinstance(again, int):
            return again
        done, why = again, problem(again.text, schema)
    if why is not None:
        if not out.as_json:
            sys.stdout.write(done.text + "\n")
        return out.error(
            {
                "type": "invalid_response_error",
                "code": "schema_mismatch",
                "message": f"the answer does not match the schema after one repair: {why}",
            },
            code=1,
            message_id=done.message_id,
        )
    folded["data"] = json.loads(done.text)
    return done


def _finish(rt: Any, out: RunOutput, folded: dict[str, Any], done: Done) -> None:
    notice = rt.models.tiny_notice(done.model) if not out.stream else None
    if out.stream:
        out.event(event_dict(done))
    elif out.as_json:
        folded["notice"] = notice
        sys.stdout.write(json.dumps(fold(done, folded), default=str, ensure_ascii=False) + "\n")
    else:
        out.done_text(done.text)
        if notice:
            sys.stderr.write(f"[note: {notice}]\n")


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
