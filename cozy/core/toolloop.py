"""Tools stage and tool execution: allowlist, side-effect policy, approvals, audit.

read-only tools run without asking (concurrently when the model asks for several);
write / network / dangerous tools need the face's approver (TUI modal, CLI prompt
or `--yes`), unless the user said "always" for this personality. Every call is
audited. Tool errors go back to the model as tool results; they never fail a turn.
Arguments are validated against each tool's schema here, for every provider; face
policies (e.g. no `dangerous` tools over HTTP) apply before any approval, and
"always" answers are remembered in a grant store when one is given.

Which tools are offered lives in toolpolicy, the audit row in toolaudit, and the
progress plumbing of a running call in toollive; the order of the checks stays here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal, Protocol

from cozy.core.events import ChatEvent, ToolApprovalNeeded, ToolResult
from cozy.core.personalities import Personality
from cozy.core.toolaudit import CallOutcome, args_digest, audit_row, redact_args
from cozy.core.toollive import live_context, run_with_news
from cozy.core.toolmedia import MediaRelay
from cozy.core.toolpolicy import (
    GrantStore,
    Rule,
    face_policies,
    matches_any,
    offer_patterns,
    offered,
)
from cozy.core.types import Caller, Message, ToolCall, ToolOutput, ToolSpec
from cozy.engines.base import ToolContext, ToolsEngine
from cozy.engines.toolargs import check_arguments

Decision = Literal["once", "always", "deny"]


class Approver(Protocol):
    async def __call__(self, call: ToolCall, spec: ToolSpec, ctx: ToolContext) -> Decision: ...


class AuditSink(Protocol):
    async def add_audit(self, kind: str, **values: Any) -> str: ...


__all__ = [
    "Approver",
    "AuditSink",
    "CallOutcome",
    "ToolRunner",
    "args_digest",
    "offer_patterns",
    "redact_args",
]


class ToolRunner:
    def __init__(
        self,
        engine: ToolsEngine | None,
        audit: AuditSink | None = None,
        *,
        grants: GrantStore | None = None,
        policies: dict[str, dict[str, Rule]] | None = None,
        max_rounds: int = 10,
    ) -> None:
        self.engine = engine
        self.audit = audit
        self.grants = grants  # persisted "always" answers; in memory only when None
        self.policies = policies if policies is not None else face_policies()
        self.max_rounds = max_rounds
        self._grants: set[tuple[str, str, str]] = set()
        self.max_sampling_tokens = 1024  # per MCP sampling request, whatever it asks

    async def available(self, personality: Personality, caller: Caller) -> list[ToolSpec]:
        """Tools this personality may use and this caller may call."""
        return (await self.available_with_problems(personality, caller))[0]

    async def available_with_problems(
        self, personality: Personality, caller: Caller
    ) -> tuple[list[ToolSpec], list[str]]:
        """The tools offered this turn, plus why some could not be (servers that failed).

        Only the servers these globs can reach are started. Levels the caller's face
        policy denies are not offered at all (the run stage refuses them too, should a
        model call one anyway)."""
        patterns = offer_patterns(personality, caller)
        if self.engine is None or not patterns:
            return [], []
        specs, problems = await self.engine.list_tools_for(patterns)
        denied = {lvl for lvl, rule in self.policies.get(caller.face, {}).items() if rule == "deny"}
        out = [
            spec
            for spec in specs
            if spec.level not in denied and offered(spec.name, personality, caller)
        ]
        return out, problems

    def sampler(
        self, route: Any, approver: Approver | None, ctx: ToolContext
    ) -> Callable[[str, list[dict[str, str]], str | None, int], Awaitable[tuple[str, str]]]:
        """Answers an MCP server's sampling request with this turn's model: asked like a
        network tool called `<server>.sampling` (grants apply), capped at
        `max_sampling_tokens`, audited."""

        async def sample(
            server: str, messages: list[dict[str, str]], system: str | None, max_tokens: int
        ) -> tuple[str, str]:
            from cozy.core.errors import ToolError
            from cozy.core.types import GenerationOptions

            spec = ToolSpec(
                f"{server}.sampling",
                f"the MCP server '{server}' asks cozy's model to write a reply",
                level="network",
                server=server,
            )
            shown = {"messages": messages[-3:], "system": system, "max_tokens": max_tokens}
            call = ToolCall(f"sampling-{time.monotonic_ns()}", spec.name, json.dumps(shown))
            decision = await self._pre_approved(spec, ctx)
            asked = decision is None
            if decision is None:
                decision = await self._ask(call, spec, ctx, approver)
            if decision in ("deny", "policy-deny"):
                refused = CallOutcome(call, ToolOutput("denied", is_error=True), decision, asked)
                await self._audit(spec, shown, ctx, refused)
                raise ToolError(f"the user did not allow {server} to use cozy's model")
            cap = min(max(max_tokens, 1), self.max_sampling_tokens)
            convo = [Message("system", system)] if system else []
            convo += [Message(m["role"], m["content"]) for m in messages]  # type: ignore[arg-type]
            started = time.perf_counter()
            result = await route.engine.chat(
                convo, model=route.model, options=GenerationOptions(max_tokens=cap)
            )
            out = ToolOutput(result.content, duration_ms=(time.perf_counter() - started) * 1000)
            await self._audit(spec, shown, ctx, CallOutcome(call, out, decision, asked))
            return result.content, route.label

        return sample

    def grant(self, user_id: str, personality_id: str, tool: str) -> None:
        self._grants.add((user_id, personality_id, tool))

    async def remember(self, user_id: str, personality_id: str, tool: str) -> None:
        """Record an "always" answer (persisted when a grant store is configured)."""
        if self.grants is None:
            self.grant(user_id, personality_id, tool)
        else:
            await self.grants.add_grant(user_id, personality_id, tool)

    async def _granted(self, user_id: str, personality_id: str, tool: str) -> bool:
        if (user_id, personality_id, tool) in self._grants:
            return True
        if self.grants is None:
            return False
        return await self.grants.is_granted(user_id, personality_id, tool)

    def face_rule(self, spec: ToolSpec, ctx: ToolContext) -> Rule | None:
        """The face policy's rule for this tool's level, if the face has one."""
        return self.policies.get(ctx.caller.face, {}).get(spec.level)

    async def _pre_approved(self, spec: ToolSpec, ctx: ToolContext) -> str | None:
        rule = self.face_rule(spec, ctx)
        if rule == "deny":
            return "policy-deny"
        if spec.level == "read-only":
            return "auto"
        if rule == "allow":
            return "policy-allow"
        caller = ctx.caller
        if await self._granted(caller.user_id, ctx.personality_id or "", spec.name):
            return "always"
        named = caller.auto_approve and matches_any(spec.name, caller.allowed_tools)
        if named and (spec.level != "dangerous" or caller.auto_approve_dangerous):
            return "auto-approved"
        return None

    async def run(
        self,
        calls: list[ToolCall],
        specs: dict[str, ToolSpec],
        ctx: ToolContext,
        approver: Approver | None,
        results: list[Message],
    ) -> AsyncIterator[ChatEvent]:
        """Execute one round of calls; append tool messages to `results`; yield events."""
        outcomes: dict[str, CallOutcome] = {}
        concurrent: list[tuple[ToolCall, ToolSpec, dict[str, Any]]] = []
        news: asyncio.Queue[ChatEvent] = asyncio.Queue()  # progress of running tools
        for call in calls:
            checked = await self._check(call, specs, ctx)
            if isinstance(checked, CallOutcome):
                outcomes[call.id] = checked
                continue
            spec, args = checked
            decision = await self._pre_approved(spec, ctx)
            if decision == "policy-deny":
                face = ctx.caller.face
                outcomes[call.id] = CallOutcome(
                    call,
                    ToolOutput(
                        f"{spec.name} is a {spec.level} tool and the {face} face's policy "
                        f"denies {spec.level} tools (tools.{face}_policy in engines.yaml); "
                        "do not retry it, continue without it",
                        is_error=True,
                    ),
                    decision,
                )
                await self._audit(spec, args, ctx, outcomes[call.id])
                continue
            asked = decision is None
            if decision is None:
                yield ToolApprovalNeeded(call=call, level=spec.level)
                try:
                    decision = await self._ask(call, spec, ctx, approver)
                except asyncio.CancelledError:
                    interrupted = CallOutcome(call, _INTERRUPTED, "pending", asked=True)
                    await self._audit(spec, args, ctx, interrupted, status="interrupted")
                    raise
            if decision == "deny":
                outcomes[call.id] = CallOutcome(
                    call,
                    ToolOutput(
                        f"the user denied the call to {spec.name} ({spec.level}); "
                        "do not retry it, continue without it",
                        is_error=True,
                    ),
                    "deny",
                    asked=asked,
                )
                await self._audit(spec, args, ctx, outcomes[call.id])
                continue
            if spec.level == "read-only":
                concurrent.append((call, spec, args))
                outcomes[call.id] = CallOutcome(call, ToolOutput(""), decision, asked=asked)
            else:
                one = self._execute(
                    call, spec, args, live_context(ctx, call, spec, news), decision, asked
                )
                box: list[CallOutcome] = []
                async for event in run_with_news(one, news, box):
                    yield event
                outcomes[call.id] = box[0]
        if concurrent:
            many = asyncio.gather(
                *(
                    self._execute(
                        c,
                        s,
                        a,
                        live_context(ctx, c, s, news),
                        outcomes[c.id].decision,
                        outcomes[c.id].asked,
                    )
                    for c, s, a in concurrent
                )
            )
            got: list[list[CallOutcome]] = []
            async for event in run_with_news(many, news, got):
                yield event
            for outcome in got[0]:
                outcomes[outcome.call.id] = outcome
        relay = MediaRelay(ctx.extra.get("accepts_images"))
        for call in calls:
            o = outcomes[call.id]
            name = specs[call.name].name if call.name in specs else call.name
            content, media = await relay.take(name, o.output)
            yield ToolResult(
                call_id=call.id,
                name=name,
                content=o.output.content,
                is_error=o.output.is_error,
                duration_ms=round(o.output.duration_ms, 2),
                decision=o.decision,
                media=media,
            )
            results.append(Message("tool", content, tool_call_id=call.id, name=call.name))
        images = relay.message()  # after every tool message: the model sees the images
        if images is not None:
            results.append(images)

    async def _check(
        self, call: ToolCall, specs: dict[str, ToolSpec], ctx: ToolContext
    ) -> tuple[ToolSpec, dict[str, Any]] | CallOutcome:
        """The call's tool and arguments, or the (audited) error that goes back instead."""
        spec = specs.get(call.name)
        if spec is None:
            known = ", ".join(specs) or "none"
            out = _error(call, f"unknown tool '{call.name}'; available: {known}")
            out.decision = "not-offered"
            unknown = ToolSpec(call.name, level="dangerous", server="?")
            await self._audit(unknown, _loose_args(call.arguments), ctx, out)
            return out
        try:
            args = json.loads(call.arguments or "{}")
            if not isinstance(args, dict):
                raise ValueError("arguments must be a JSON object")
        except ValueError as exc:
            out = _error(call, f"invalid arguments for {spec.name}: {exc}")
            await self._audit(spec, {}, ctx, out)
            return out
        problem = check_arguments(spec.parameters, args)
        if problem:
            msg = f"invalid arguments for {spec.name}: {problem}; fix them and call again"
            out = _error(call, msg)
            await self._audit(spec, args, ctx, out)
            return out
        return spec, args

    async def _ask(
        self, call: ToolCall, spec: ToolSpec, ctx: ToolContext, approver: Approver | None
    ) -> str:
        if approver is None:
            return "deny"
        decision = await approver(call, spec, ctx)
        if decision == "always":
            await self.remember(ctx.caller.user_id, ctx.personality_id or "", spec.name)
        return decision

    async def _execute(
        self,
        call: ToolCall,
        spec: ToolSpec,
        args: dict[str, Any],
        ctx: ToolContext,
        decision: str,
        asked: bool = False,
    ) -> CallOutcome:
        assert self.engine is not None
        started = time.perf_counter()
        try:
            output = await self.engine.execute_tool(spec.name, args, ctx)
        except asyncio.CancelledError:
            took = ToolOutput(_INTERRUPTED.content, is_error=True)
            took.duration_ms = (time.perf_counter() - started) * 1000
            stopped = CallOutcome(call, took, decision, asked=asked)
            await self._audit(spec, args, ctx, stopped, status="interrupted")
            raise
        except Exception as exc:  # a tool failure goes back to the model
            output = ToolOutput(f"{spec.name} failed: {exc}", is_error=True)
        if not output.duration_ms:
            output.duration_ms = (time.perf_counter() - started) * 1000
        outcome = CallOutcome(call, output, decision, asked=asked)
        await self._audit(spec, args, ctx, outcome)
        return outcome

    async def _audit(
        self,
        spec: ToolSpec,
        args: dict[str, Any],
        ctx: ToolContext,
        o: CallOutcome,
        *,
        status: str | None = None,
    ) -> None:
        """One row per attempted call, whatever came of it (shielded: an interrupted
        call is recorded even as its task is being cancelled)."""
        if self.audit is None:
            return
        row = audit_row(spec, args, ctx, o, status)
        write = asyncio.ensure_future(self.audit.add_audit("tool_call", **row))
        try:
            await asyncio.shield(write)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(write), 5.0)
            raise


_INTERRUPTED = ToolOutput(
    "the call was interrupted (the user stopped the turn) before it finished; "
    "its result is unknown",
    is_error=True,
)


def _loose_args(arguments: str) -> dict[str, Any]:
    try:
        loaded = json.loads(arguments or "{}")
    except ValueError:
        return {"raw": arguments}
    return loaded if isinstance(loaded, dict) else {"raw": loaded}


def _error(call: ToolCall, message: str) -> CallOutcome:
    return CallOutcome(call, ToolOutput(message, is_error=True), "invalid")
