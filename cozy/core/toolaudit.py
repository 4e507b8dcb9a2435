"""What the audit keeps of a tool call: who allowed it, what went in and came out.

Arguments are stored redacted (secrets by key name and by value pattern) and bounded;
the result as a bounded, redacted excerpt. Enough to answer "what did it write, and
who allowed it?" without turning the audit table into a copy of every file read.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from cozy.core.types import ToolCall, ToolOutput, ToolSpec
from cozy.engines.base import ToolContext

_SECRET_KEY = re.compile(
    r"(key|token|secret|password|passwd|passphrase|authorization|cookie|credential)", re.I
)
# Value shapes that are secrets whatever the key is called.
_SECRET_VALUE = re.compile(
    r"(sk-[A-Za-z0-9_-]{16,}"  # OpenAI-style API keys
    r"|gh[pousr]_[A-Za-z0-9]{20,}"  # GitHub tokens
    r"|github_pat_[A-Za-z0-9_]{20,}"
    r"|xox[abprs]-[A-Za-z0-9-]{10,}"  # Slack
    r"|AKIA[0-9A-Z]{16}"  # AWS access key ids
    r"|AIza[0-9A-Za-z_-]{30,}"  # Google API keys
    r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+"  # JWTs
    r"|(?i:bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$))"
)
ARGS_LIMIT = 2000
RESULT_LIMIT = 500
REDACTED = "***"


def redact_text(text: str) -> str:
    return _SECRET_VALUE.sub(REDACTED, text)


def redact_args(args: Any) -> Any:
    if isinstance(args, dict):
        return {
            k: REDACTED if _SECRET_KEY.search(str(k)) else redact_args(v) for k, v in args.items()
        }
    if isinstance(args, list):
        return [redact_args(v) for v in args]
    if isinstance(args, str):
        return redact_text(args)
    return args


def args_digest(args: Any) -> str:
    text = json.dumps(redact_args(args), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def bounded(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"… [{len(text) - limit} more characters]"


def args_excerpt(args: Any) -> str:
    return bounded(json.dumps(redact_args(args), ensure_ascii=False, default=str), ARGS_LIMIT)


def result_excerpt(content: str) -> str:
    return bounded(redact_text(content), RESULT_LIMIT)


# How each decision came about, for the audit's `approver`.
_HOW = {
    "auto": "read-only: no approval needed",
    "auto-approved": "--yes with --allow-tools",
    "always": "a remembered 'always' grant",
    "policy-allow": "the face policy",
    "policy-deny": "the face policy",
    "once": "the user, once",
    "deny": "the user (or no one to ask)",
    "invalid": "not run: invalid call",
    "not-offered": "not run: the tool was not offered",
    "pending": "interrupted while asking",
}


def approver(decision: str, face: str, personality: str | None, user: str) -> dict[str, Any]:
    return {
        "face": face,
        "personality": personality,
        "user": user,
        "by": _HOW.get(decision, decision),
    }


@dataclass(slots=True)
class CallOutcome:
    call: ToolCall
    output: ToolOutput
    decision: str
    asked: bool = False  # the decision came from the face's approver (a person)


def audit_row(
    spec: ToolSpec,
    args: dict[str, Any],
    ctx: ToolContext,
    o: CallOutcome,
    status: str | None = None,
) -> dict[str, Any]:
    """The audit row for one attempted call; `status` defaults from the decision."""
    if status is None:
        if o.decision in ("deny", "policy-deny"):
            status = "denied"
        elif o.decision in ("invalid", "not-offered"):
            status = o.decision
        else:
            status = "error" if o.output.is_error else "ok"
    who = approver(o.decision, ctx.caller.face, ctx.personality_id, ctx.caller.user_id)
    if o.asked and o.decision in ("once", "always", "deny"):
        who["by"] = {"once": "the user, once", "always": "the user: always"}.get(
            o.decision, "the user said no (or no one answered)"
        )
    return {
        "user_id": ctx.caller.user_id,
        "session_id": ctx.session_id,
        "personality_id": ctx.personality_id,
        "tool": spec.name,
        "level": spec.level,
        "decision": o.decision,
        "args_digest": args_digest(args),
        "status": status,
        "duration_ms": round(o.output.duration_ms, 2),
        "output_size": len(o.output.content),
        "detail": {
            "request_id": ctx.request_id,
            "truncated": o.output.truncated,
            "approver": who,
            "arguments": args_excerpt(args),
            "result": result_excerpt(o.output.content),
        },
    }
