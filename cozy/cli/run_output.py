"""What `cozy run` prints: text (plain or Markdown), one JSON object, or JSON lines.

Every ending prints exactly one final JSON object (`--json`) or one `done`/`error`
event (`--json --stream`), whatever ends the turn.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from cozy.cli.run_render import PlainSink, TextSink

if TYPE_CHECKING:
    from cozy.core.events import ChatEvent


class RunOutput:
    def __init__(self, as_json: bool, stream: bool, text_sink: TextSink | None = None) -> None:
        self.as_json = as_json
        self.stream = as_json and stream
        self.sink: TextSink = text_sink or PlainSink()
        self.hold = False  # --schema: the text is shown once checked, not as it streams
        self.session_id: str | None = None
        self.text: list[str] = []
        self.closed = False
        self.tool_calls: list[dict[str, Any]] = []

    def event(self, data: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(data, default=str) + "\n")
        sys.stdout.flush()

    def begin(self) -> None:
        """The turn is starting: on a terminal, the spinner."""
        if not self.as_json:
            self.sink.start()

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
        else:
            self.sink.end(ok=False)
        sys.stderr.write(f"error: {error.get('message')}\n")
        return code

    def show(self, event: ChatEvent, folded: dict[str, Any]) -> None:
        """A non-final event: an event line (stream), text (plain), or folded (JSON)."""
        from cozy.core.events import (
            ContextBuilt,
            TextDelta,
            ToolCallRequested,
            ToolLog,
            ToolResult,
        )

        if isinstance(event, TextDelta):
            self.text.append(event.text)
            if not self.as_json and not self.hold:
                self.sink.write(event.text)
        if self.stream:
            self.event(event_dict(event))
        elif isinstance(event, ContextBuilt):
            folded["context"] = event.metadata
            if not self.as_json and event.metadata.get("degraded"):
                reasons = "; ".join(event.metadata.get("degrade_reasons", []))
                sys.stderr.write(f"[context degraded: {reasons}]\n")
        elif isinstance(event, ToolCallRequested | ToolResult):
            self._tool(event, folded)
        elif isinstance(event, ToolLog):  # at most a few per call (core/toollive.py)
            folded.setdefault("tool_logs", []).append(event_dict(event))
            if not self.as_json:
                logger = f" {event.logger}" if event.logger else ""
                sys.stderr.write(f"[{event.server}{logger} {event.level}: {event.text}]\n")
        if isinstance(event, ToolCallRequested):
            self.tool_calls.append(event_dict(event)["call"])

    def _tool(self, event: ChatEvent, folded: dict[str, Any]) -> None:
        from cozy.core.events import ToolCallRequested

        data = event_dict(event)
        if isinstance(event, ToolCallRequested):
            folded["tool_calls"].append(data["call"])
            if not self.as_json:
                sys.stderr.write(f"[tool {event.call.name} {event.call.arguments}]\n")
            return
        folded["tool_results"].append(data)
        if not self.as_json:
            for m in data.get("media") or []:
                seen = "shown to the model" if m.get("to_model") else "not shown to the model"
                sys.stderr.write(
                    f"[tool {data.get('name')} returned {m['type']} {m['mime']}, "
                    f"{m['bytes']} bytes: {seen}]\n"
                )
        if not self.as_json and data.get("is_error") and data.get("decision") == "deny":
            from cozy.cli import approve

            why = f" ({approve.last_problem})" if approve.last_problem else ""
            sys.stderr.write(f"[tool {data.get('name')} not run: denied{why}]\n")

    def done_text(self, text: str | None = None) -> None:
        """The answer is complete (plain mode): close the text, or print the held one."""
        if self.hold and text is not None:
            self.sink.write(text)
        self.sink.end(ok=True)

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


def event_dict(event: ChatEvent) -> dict[str, Any]:
    data = event.to_dict()
    call = data.get("call")
    if isinstance(call, dict):
        data["call"] = {k: call[k] for k in ("id", "name", "arguments")}
    return data


def fold(done: Any, folded: dict[str, Any]) -> dict[str, Any]:
    """The one `--json` object: the Done event with what the turn's events said."""
    ctx = folded["context"]
    out = {
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
        "tool_logs": folded.get("tool_logs", []),
    }
    for key in ("data", "inputs"):  # --schema: the parsed answer; -f/-a: what was sent
        if key in folded:
            out[key] = folded[key]
    return out
