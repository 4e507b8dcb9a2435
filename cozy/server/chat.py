"""OpenAI chat request → `ChatRequest`, and orchestrator events → OpenAI bodies/chunks.

Messages and sessions (documented in the README's server section):

* Unbound (default): the client owns the conversation, as with any OpenAI server.
  The last `user` message is the prompt, the earlier user/assistant/tool messages
  are `ChatRequest.history`, `system`/`developer` messages are added to the
  personality's prompt. The turn is still saved, in a new session.
* Bound: `X-Cozy-Session: <id>|last|new`, `metadata.cozy_session`, or a `user`
  field holding a session id (`ses_…`). cozy's stored history is used and only the
  last user message is taken from `messages`.

Either way the response carries `X-Cozy-Session` with the session id.
`model`: `cozy` (default personality), `cozy/<personality>`, a personality id, or a
raw model (`provider:model`, alias, bare name) used with the default personality.
"""

from __future__ import annotations

from typing import Any

import msgspec

from cozy.core.errors import NotFoundError, UsageError
from cozy.core.events import ChatEvent, ContextBuilt, Done, Failed, TextDelta, ToolCallRequested
from cozy.core.orchestrator import ChatRequest
from cozy.core.personalities import PersonalityCatalog
from cozy.core.types import Caller, GenerationOptions, Message, ToolCall, ToolSpec
from cozy.server.schemas import ChatCompletionRequest, ChatMessageIn

SESSION_HEADER = "x-cozy-session"


class BadParam(UsageError):
    def __init__(self, message: str, *, param: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.param = param


class UnknownModel(NotFoundError):
    code = "model_not_found"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.param = "model"


def resolve_model(model: str, catalog: PersonalityCatalog) -> tuple[str | None, str | None]:
    """(personality id, raw model) for the request's `model` field."""
    if model == "cozy":
        return None, None
    if model.startswith("cozy/"):
        pid = model.removeprefix("cozy/")
        if pid not in catalog.all():
            known = ", ".join(f"cozy/{p}" for p in sorted(catalog.all()))
            raise UnknownModel(
                f"the model '{model}' does not exist",
                hint=f"use one of {known}, or a provider model (GET /v1/models)",
            )
        return pid, None
    if model in catalog.all():
        return model, None
    return None, model


def _binding(body: ChatCompletionRequest, header: str | None) -> str | None:
    if header:
        return header.strip()
    meta = body.metadata or {}
    for key in ("cozy_session", "cozy_session_id", "session_id"):
        if meta.get(key):
            return meta[key]
    if body.user and body.user.startswith("ses_"):
        return body.user
    return None


def _message(m: ChatMessageIn) -> Message:
    calls = [
        ToolCall(c.id, c.function.name, c.function.arguments or "{}", i)
        for i, c in enumerate(m.tool_calls or [])
    ]
    role = "system" if m.role == "developer" else m.role
    return Message(role, m.text(), tool_calls=calls, tool_call_id=m.tool_call_id, name=m.name)


def build_request(
    body: ChatCompletionRequest,
    caller: Caller,
    catalog: PersonalityCatalog,
    *,
    session_header: str | None,
    request_id: str,
) -> ChatRequest:
    personality, model = resolve_model(body.model, catalog)
    system = [m.text() for m in body.messages if m.role in ("system", "developer")]
    convo = [m for m in body.messages if m.role not in ("system", "developer")]
    last_user = max((i for i, m in enumerate(convo) if m.role == "user"), default=-1)
    if last_user < 0:
        raise BadParam(
            "messages must contain at least one user message",
            param="messages",
            hint='send e.g. [{"role": "user", "content": "hello"}]',
        )
    bound = _binding(body, session_header)
    if last_user != len(convo) - 1:
        # a client continues after its own tool calls: the history it sends ends with
        # the assistant's tool calls and their results, and there is no new prompt
        if convo[-1].role != "tool":
            raise BadParam(
                "the last message must be from the user, or a tool result",
                param="messages",
                hint="send a user message, or the results of the tool calls you were given",
            )
        history: list[Message] | None = [_message(m) for m in convo]
        prompt = ""
    else:
        prompt = convo[last_user].text()
        if not prompt.strip():
            raise BadParam("the last user message is empty", param="messages")
        history = None if bound else [_message(m) for m in convo[:last_user]]
    stop = [body.stop] if isinstance(body.stop, str) else body.stop
    options = GenerationOptions(
        temperature=body.temperature,
        top_p=body.top_p,
        max_tokens=body.max_tokens or body.max_completion_tokens,
        stop=stop,
        seed=body.seed,
        response_format=body.response_format,
    )
    client_tools: list[ToolSpec] = []
    if body.tools and body.tool_choice != "none":
        client_tools = [
            ToolSpec(
                t.function.name,
                t.function.description,
                t.function.parameters or {"type": "object", "properties": {}},
                "read-only",
                "client",
            )
            for t in body.tools
        ]
    return ChatRequest(
        prompt=prompt,
        caller=caller,
        session=bound or "new",
        personality=personality,
        model=model,
        system="\n\n".join(s for s in system if s.strip()) or None,
        options=options,
        history=history,
        client_tools=client_tools,
        request_id=request_id,
    )


# --- responses ---------------------------------------------------------------


def completion_body(done: Done, *, cid: str, created: int, model: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": done.text}
    if done.tool_calls:
        message["tool_calls"] = [
            {
                "id": c["id"],
                "type": "function",
                "function": {"name": c["name"], "arguments": c["arguments"]},
            }
            for c in done.tool_calls
        ]
        message["content"] = done.text or None
    finish = "tool_calls" if done.tool_calls else (done.finish_reason or "stop")
    return {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": done.usage or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        "system_fingerprint": None,
    }


class ChunkWriter:
    """Turns events into SSE `data:` lines of `chat.completion.chunk` objects."""

    def __init__(self, *, cid: str, created: int, model: str, include_usage: bool) -> None:
        self.base = {"id": cid, "object": "chat.completion.chunk", "created": created}
        self.model = model
        self.include_usage = include_usage
        self.tool_index = 0

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        data = {
            **self.base,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }
        if self.include_usage:
            data["usage"] = None
        return b"data: " + msgspec.json.encode(data) + b"\n\n"

    def first(self) -> bytes:
        return self._chunk({"role": "assistant", "content": ""})

    def event(self, event: ChatEvent) -> bytes | None:
        if isinstance(event, TextDelta):
            return self._chunk({"content": event.text})
        if isinstance(event, ToolCallRequested) and event.client_side:
            call = event.call
            index = self.tool_index
            self.tool_index += 1
            return self._chunk(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": call.id,
                            "type": "function",
                            "function": {"name": call.name, "arguments": call.arguments},
                        }
                    ]
                }
            )
        return None

    def done(self, done: Done) -> bytes:
        finish = "tool_calls" if done.tool_calls else (done.finish_reason or "stop")
        out = self._chunk({}, finish)
        if self.include_usage:
            usage = {**self.base, "model": self.model, "choices": [], "usage": done.usage}
            out += b"data: " + msgspec.json.encode(usage) + b"\n\n"
        return out + b"data: [DONE]\n\n"

    def failed(self, failed: Failed) -> bytes:
        err = failed.error
        payload = {
            "error": {
                "message": err.get("message", "error"),
                "type": err.get("type", "server_error"),
                "param": None,
                "code": err.get("code"),
            }
        }
        return b"data: " + msgspec.json.encode(payload) + b"\n\ndata: [DONE]\n\n"


def context_engines(event: ContextBuilt) -> dict[str, Any]:
    engines = event.metadata.get("engines") or {}
    return dict(engines) if isinstance(engines, dict) else {}
