"""What the fake model answers: queued replies, rules, failures, structured output.

Both wire protocols (OpenAI, Ollama) normalise their request into a `ChatView`,
ask `Script.decide()` for a `Reply`, and render it in their own shape.
All state is guarded by one lock: tests mutate it from their thread while the
server reads it from its own.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from cozy.testing.synth import count_tokens, is_valid, synthesize


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()

# How cozy's own background jobs open their system prompts (memory extraction,
# profile extraction, session summaries).
BACKGROUND_PROMPTS = (
    "You maintain a long-term memory of durable facts",
    "You keep a structured profile of the user",
    "You write faithful, compact conversation summaries",
)


def opens_background(role: object, content: object) -> bool:
    """True when a request's first message is a cozy background job's system prompt."""
    return role == "system" and isinstance(content, str) and content.startswith(BACKGROUND_PROMPTS)


@dataclass(slots=True)
class ScriptedCall:
    """A tool call the fake model will make."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)

    @property
    def arguments_json(self) -> str:
        return json.dumps(self.arguments)


@dataclass(slots=True)
class Reply:
    """One answer: text and/or tool calls, or a JSON value for structured output."""

    text: str = ""
    tool_calls: list[ScriptedCall] = field(default_factory=list)
    json: Any = UNSET

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.tool_calls else "stop"


@dataclass(slots=True)
class ViewMessage:
    role: str
    content: str
    tool_calls: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class ChatView:
    """A chat request, independent of the wire protocol."""

    api: str  # "openai" | "ollama"
    model: str
    messages: list[ViewMessage]
    tools: list[str]
    stream: bool
    schema: dict[str, Any] | None = None  # structured output schema ({} = any JSON)
    max_tokens: int | None = None
    stop: list[str] = field(default_factory=list)

    @property
    def last_user(self) -> str:
        for msg in reversed(self.messages):
            if msg.role == "user":
                return msg.content
        return ""

    @property
    def background(self) -> bool:
        """True when a cozy background job (not a user's turn) sent this request."""
        first = self.messages[0] if self.messages else None
        return first is not None and opens_background(first.role, first.content)

    @property
    def tool_result(self) -> str | None:
        """Content of the trailing tool results, if the last message is a tool result."""
        results: list[str] = []
        for msg in reversed(self.messages):
            if msg.role != "tool":
                break
            results.insert(0, msg.content)
        return "\n".join(results) if results else None

    @property
    def prompt_tokens(self) -> int:
        total = 0
        for msg in self.messages:
            total += count_tokens(msg.content)
            for call in msg.tool_calls:
                total += count_tokens(json.dumps(call))
        return total


@dataclass(slots=True)
class Rule:
    """Answer with `reply` when every given condition holds.

    `user_contains` looks at the last user message (case-insensitive); unless
    `after_tool` says otherwise it only matches when no tool result follows that
    message, so a rule that calls a tool does not loop. `after_tool=True` matches
    only right after tool results. In reply text, `{tool_result}` and
    `{last_user}` are substituted.
    """

    reply: Reply
    user_contains: str | None = None
    after_tool: bool | None = None
    tool_offered: str | None = None
    predicate: Callable[[ChatView], bool] | None = None
    times: int | None = None

    def matches(self, view: ChatView) -> bool:
        after_tool = self.after_tool
        if after_tool is None and self.user_contains is not None:
            after_tool = False
        if after_tool is not None and (view.tool_result is not None) != after_tool:
            return False
        if self.user_contains is not None and (
            self.user_contains.lower() not in view.last_user.lower()
        ):
            return False
        if self.tool_offered is not None and self.tool_offered not in view.tools:
            return False
        return self.predicate is None or self.predicate(view)


@dataclass(slots=True)
class Failure:
    """Failure injected into the next `times` requests (matching `path` if given)."""

    status: int = 500
    times: int = 1
    path: str | None = None
    drop: bool = False
    after_chunks: int = 0
    retry_after: float | None = None
    message: str | None = None
    hang: bool = False  # go silent (no headers, or after `after_chunks` body chunks)


def make_reply(
    text: str = "",
    tool_calls: Sequence[tuple[str, Mapping[str, Any]] | ScriptedCall] | None = None,
    json: Any = UNSET,
) -> Reply:
    calls = [
        c if isinstance(c, ScriptedCall) else ScriptedCall(c[0], dict(c[1]))
        for c in tool_calls or ()
    ]
    return Reply(text=text, tool_calls=calls, json=json)


class Script:
    """Queued replies, rules and failures; thread-safe.

    Queued replies answer turns only; cozy's background jobs (see `ChatView.background`)
    get rules or the default, so a job running between two turns never takes a reply
    a test queued for the next turn.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Reply] = deque()
        self._rules: list[Rule] = []
        self._failures: deque[Failure] = deque()

    def reset(self) -> None:
        with self._lock:
            self._queue.clear()
            self._rules.clear()
            self._failures.clear()

    def queue(self, reply: Reply) -> None:
        with self._lock:
            self._queue.append(reply)

    def add_rule(self, rule: Rule) -> Rule:
        with self._lock:
            self._rules.append(rule)
        return rule

    def add_failure(self, failure: Failure) -> None:
        with self._lock:
            self._failures.append(failure)

    def take_failure(self, path: str) -> Failure | None:
        with self._lock:
            for failure in self._failures:
                if failure.path is None or failure.path in path:
                    failure.times -= 1
                    if failure.times <= 0:
                        self._failures.remove(failure)
                    return failure
        return None

    def decide(self, view: ChatView) -> Reply:
        reply = self._pick(view)
        if view.schema is not None and not reply.tool_calls:
            return _structured(reply, view)
        if not reply.text and not reply.tool_calls and reply.json is not UNSET:
            return Reply(text=json.dumps(reply.json))
        return reply

    def _pick(self, view: ChatView) -> Reply:
        with self._lock:
            # Queued replies are for turns: the job worker shares the model and can
            # ask between two turns, so a background job must not take a turn's reply.
            if self._queue and not view.background:
                return self._queue.popleft()
            for rule in self._rules:
                if rule.matches(view):
                    if rule.times is not None:
                        rule.times -= 1
                        if rule.times <= 0:
                            self._rules.remove(rule)
                    return _substitute(rule.reply, view)
        return default_reply(view)


def default_reply(view: ChatView) -> Reply:
    result = view.tool_result
    if result is not None:
        return Reply(text=f"The tool returned: {result}")
    return Reply(
        text=f"You said: {view.last_user}" if view.last_user else "Hello from the fake model."
    )


def _substitute(reply: Reply, view: ChatView) -> Reply:
    text = reply.text.replace("{last_user}", view.last_user)
    text = text.replace("{tool_result}", view.tool_result or "")
    return Reply(text=text, tool_calls=list(reply.tool_calls), json=reply.json)


def _structured(reply: Reply, view: ChatView) -> Reply:
    schema = view.schema or {}
    candidates: list[Any] = []
    if reply.json is not UNSET:
        candidates.append(reply.json)
    if reply.text:
        with contextlib.suppress(ValueError):
            candidates.append(json.loads(reply.text))
    for value in candidates:
        if not schema or is_valid(value, schema):
            return Reply(text=json.dumps(value))
    if not schema:
        return Reply(text=json.dumps({"response": reply.text or default_reply(view).text}))
    return Reply(text=json.dumps(synthesize(schema)))


def apply_limits(reply: Reply, view: ChatView) -> tuple[str, str]:
    """Text after stop sequences and `max_tokens`, with the finish reason."""
    text, reason = reply.text, reply.finish_reason
    for stop in view.stop:
        if stop and stop in text:
            text = text[: text.index(stop)]
    if view.max_tokens is not None and count_tokens(text) > view.max_tokens:
        from cozy.testing.synth import split_tokens

        text, reason = "".join(split_tokens(text)[: view.max_tokens]), "length"
    return text, reason


class ServerState(Protocol):
    """What the API routes (openai_api.py, ollama_api.py) read of the running fake
    server (server.py's `FakeModelServer`)."""

    script: Script
    models: list[str]
    strict_models: bool
    model_meta: dict[str, Any]
    vision_models: set[str]
    embedding_dims: int
    context_length: int

    def knows_model(self, name: str) -> bool: ...

    async def first_token_delay(self) -> None: ...

    async def token_delay(self, tokens: int = 1) -> None: ...
