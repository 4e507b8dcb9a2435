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

import dataclasses
import hashlib
from typing import Any

import msgspec

from cozy import __version__
from cozy.core.errors import NotFoundError, UsageError
from cozy.core.events import ChatEvent, ContextBuilt, Done, Failed, TextDelta, ToolCallRequested
from cozy.core.inputs import Fragment, assemble
from cozy.core.orchestrator import ChatRequest
from cozy.core.personalities import PersonalityCatalog
from cozy.core.types import Caller, GenerationOptions, ImagePart, Message, ToolCall, ToolSpec
from cozy.server.responses import (
    ChatCompletion,
    ChatMessageOut,
    Choice,
    CompletionUsage,
    FunctionCallOut,
    ToolCallOut,
)
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
    files = _files(m)
    return Message(
        role,
        assemble(files, m.text()) if files else m.text(),
        tool_calls=calls,
        tool_call_id=m.tool_call_id,
        name=m.name,
        images=_images(m),
    )


def _files(m: ChatMessageIn) -> list[Fragment]:
    """A message's `file` parts as fragments: sent in front of its text, and (for the
    turn's own message) stored once by hash like `cozy run -f`."""
    from cozy.core.inputs import file_part

    out: list[Fragment] = []
    for f in m.file_parts():
        name = f.get("filename") if isinstance(f.get("filename"), str) else None
        data = f.get("file_data")
        if not isinstance(data, str):
            raise BadParam(
                f"file {name or f.get('file_id') or '?'}: cozy takes a file's bytes inline",
                param="messages",
                hint="send file_data (data:<mime>;base64,...) and filename; "
                "uploaded files (file_id) are not kept by cozy",
            )
        try:
            out.append(file_part(name or f"file{len(out) + 1}", data))
        except UsageError as exc:
            raise BadParam(exc.message, param="messages", hint=exc.hint) from None
    return out


def _images(m: ChatMessageIn) -> list[ImagePart]:
    from cozy.core.inputs import image_from_url

    try:
        return [image_from_url(u) for u in m.image_urls()]
    except UsageError as exc:
        raise BadParam(exc.message, param="messages", hint=exc.hint) from None


def build_request(
    body: ChatCompletionRequest,
    caller: Caller,
    catalog: PersonalityCatalog,
    *,
    session_header: str | None,
    request_id: str,
    default_model: str | None = None,
) -> ChatRequest:
    personality, model = resolve_model(body.model, catalog)
    # COZY_MODEL / --model picks the model for personalities, as in `cozy run`
    model = model or default_model
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
    files: list[Fragment] = []
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
        files = _files(convo[last_user])
        if not prompt.strip() and not files:
            raise BadParam("the last user message is empty", param="messages")
        history = None if bound else [_message(m) for m in convo[:last_user]]
    stop = [body.stop] if isinstance(body.stop, str) else body.stop
    if (body.n or 1) > 1 and bound:
        raise BadParam(
            "n > 1 is not available on a bound session (a conversation continues one way)",
            param="n",
            hint="drop n, or drop the X-Cozy-Session binding",
        )
    options = GenerationOptions(
        temperature=body.temperature,
        top_p=body.top_p,
        max_tokens=body.max_tokens or body.max_completion_tokens,
        stop=stop,
        seed=body.seed,
        response_format=body.response_format,
        tool_choice=_tool_choice(body),
        parallel_tool_calls=body.parallel_tool_calls if body.tools else None,
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
        images=_images(convo[last_user]) if prompt or files else [],
        fragments=files,
        input_meta=_listed(files),
    )


def _listed(files: list[Fragment]) -> dict[str, Any] | None:
    from cozy.core.inputs import Inputs

    return Inputs(files, []).metadata() if files else None


def _tool_choice(body: ChatCompletionRequest) -> str | dict[str, Any] | None:
    choice = body.tool_choice
    if choice is None or choice == "none":
        return None  # "none": the tools are not sent at all
    if not body.tools:
        raise BadParam(
            "tool_choice needs tools", param="tool_choice", hint="send `tools`, or drop tool_choice"
        )
    if isinstance(choice, str):
        return choice
    names = {t.function.name for t in body.tools}
    if choice.function.name not in names:
        raise BadParam(
            f"tool_choice names '{choice.function.name}', which is not in `tools`",
            param="tool_choice",
            hint=f"name one of: {', '.join(sorted(names))}",
        )
    return {"type": "function", "function": {"name": choice.function.name}}


# --- responses ---------------------------------------------------------------


def fingerprint(model: str) -> str:
    """`system_fingerprint`: changes when cozy's version or the upstream model does."""
    key = f"{__version__}|{model}".encode()
    return "fp_" + hashlib.blake2s(key, digest_size=5).hexdigest()


def choice_body(done: Done, index: int) -> Choice:
    message = ChatMessageOut(role="assistant", content=done.text, refusal=None)
    if done.tool_calls:
        message.tool_calls = [
            ToolCallOut(
                id=c["id"],
                type="function",
                function=FunctionCallOut(name=c["name"], arguments=c["arguments"]),
            )
            for c in done.tool_calls
        ]
        message.content = done.text or None
    finish = "tool_calls" if done.tool_calls else (done.finish_reason or "stop")
    if finish not in ("stop", "length", "tool_calls", "content_filter"):
        finish = "stop"
    return Choice(index=index, message=message, finish_reason=finish)  # type: ignore[arg-type]


def usage_of(dones: list[Done]) -> dict[str, int]:
    total = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    for done in dones:
        for key in total:
            total[key] += int(done.usage.get(key, 0) or 0)
    return total


def completion_body(dones: list[Done], *, cid: str, created: int, model: str) -> ChatCompletion:
    """One `chat.completion` from the turns of its choices (n turns for `n`)."""
    return ChatCompletion(
        id=cid,
        object="chat.completion",
        created=created,
        model=model,
        choices=[choice_body(done, i) for i, done in enumerate(dones)],
        usage=CompletionUsage(**usage_of(dones)),
        system_fingerprint=fingerprint(dones[0].model),
    )


class ChunkWriter:
    """Turns events into SSE `data:` lines of `chat.completion.chunk` objects."""

    def __init__(
        self, *, cid: str, created: int, model: str, include_usage: bool, fingerprint: str
    ) -> None:
        self.base = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": fingerprint,
        }
        self.include_usage = include_usage
        self.tool_index: dict[int, int] = {}

    def _chunk(
        self,
        delta: dict[str, Any],
        finish: str | None = None,
        index: int = 0,
        extra: dict[str, Any] | None = None,
    ) -> bytes:
        data = {
            **self.base,
            **(extra or {}),
            "choices": [
                {"index": index, "delta": delta, "finish_reason": finish, "logprobs": None}
            ],
        }
        if self.include_usage:
            data["usage"] = None
        return b"data: " + msgspec.json.encode(data) + b"\n\n"

    def first(self, index: int = 0) -> bytes:
        return self._chunk({"role": "assistant", "content": "", "refusal": None}, index=index)

    def event(self, event: ChatEvent, index: int = 0) -> bytes | None:
        if isinstance(event, TextDelta):
            return self._chunk({"content": event.text}, index=index)
        if isinstance(event, ToolCallRequested) and event.client_side:
            call = event.call
            position = self.tool_index.get(index, 0)
            self.tool_index[index] = position + 1
            return self._chunk(
                {
                    "tool_calls": [
                        {
                            "index": position,
                            "id": call.id,
                            "type": "function",
                            "function": {"name": call.name, "arguments": call.arguments},
                        }
                    ]
                },
                index=index,
            )
        return None

    def finish(self, done: Done, index: int = 0, extra: dict[str, Any] | None = None) -> bytes:
        """The chunk that ends one choice (its finish_reason); `extra`: top-level fields
        (the `cozy` field of a degraded answer; the SDK keeps unknown fields)."""
        reason = "tool_calls" if done.tool_calls else (done.finish_reason or "stop")
        return self._chunk({}, reason, index, extra)

    def end(self, usage: dict[str, int]) -> bytes:
        """The usage chunk (when asked for) and `[DONE]`."""
        out = b""
        if self.include_usage:
            data = {**self.base, "choices": [], "usage": usage}
            out = b"data: " + msgspec.json.encode(data) + b"\n\n"
        return out + b"data: [DONE]\n\n"

    def failed(self, failed: Failed) -> bytes:
        err = failed.error
        payload = {
            "error": {"message": err.message, "type": err.type, "param": None, "code": err.code}
        }
        return b"data: " + msgspec.json.encode(payload) + b"\n\ndata: [DONE]\n\n"


def fan_out(req: ChatRequest, n: int) -> list[ChatRequest]:
    """n independent turns for `n` choices, run in parallel (one upstream call each).

    Each choice is saved as its own new session (n > 1 is refused on a bound session),
    so every answer the client received is kept; the first one's id is returned in
    X-Cozy-Session."""
    if n <= 1:
        return [req]
    return [
        dataclasses.replace(req, request_id=f"{req.request_id}-{i}" if i else req.request_id)
        for i in range(n)
    ]


def context_engines(event: ContextBuilt) -> dict[str, Any]:
    engines = event.metadata.get("engines") or {}
    return dict(engines) if isinstance(engines, dict) else {}
