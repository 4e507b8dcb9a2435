"""OpenAI-compatible routes: chat completions (JSON and SSE) and models. The turns a
completion runs are in chat_turns.py, embeddings in embeddings_api.py."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody
from litestar.response import Stream

from cozy.core.errors import CozyError
from cozy.core.events import Done, Failed, Started
from cozy.core.orchestrator import ChatRequest
from cozy.runtime import Runtime
from cozy.server.chat import (
    SESSION_HEADER,
    ChunkWriter,
    build_request,
    completion_body,
    fan_out,
    fingerprint,
)
from cozy.server.chat_turns import ChatTurn, answer, sse, until_started
from cozy.server.deps import PathStr, PrincipalDep, services
from cozy.server.errors import body as error_body
from cozy.server.errors import error_response
from cozy.server.responses import ChatCompletion, ModelList, ModelObject, StreamingOperation
from cozy.server.schemas import ChatCompletionRequest

# names the context engines an answer was built without (timed out, failed, keywords only)
DEGRADED_HEADER = "x-cozy-degraded"


def _plan(rt: Runtime, req: ChatRequest) -> tuple[str | None, int]:
    """For the estimate: the `provider:model` the request will most likely use (when
    prices are configured) and the personality prompt's tokens cozy adds."""
    found = rt.personalities.all().get(req.personality or rt.orchestrator.default_personality)
    system = len(found.system_prompt) // 4 if found else 0
    if not rt.config.ai.prices:
        return None, system
    try:
        provider, model = rt.router.split(req.model or (found.model if found else None))
    except CozyError:
        return None, system
    return f"{provider}:{model}", system


def _failed_response(failed: Failed, session_id: str | None) -> Response[Any]:
    err = failed.error
    payload = error_body(err.message, type_=err.type, code=err.code)
    headers = {SESSION_HEADER: session_id} if session_id else {}
    if err.retry_after:  # a busy in-process model: when to come back
        headers["Retry-After"] = str(err.retry_after)
    return error_response(err.http_status, payload, headers or None)


class OpenAIController(Controller):
    path = "/v1"
    tags = ("openai",)

    @post(
        "/chat/completions",
        status_code=200,
        summary="Create a chat completion",
        responses={200: ResponseSpec(ChatCompletion, description="The completion (JSON or SSE)")},
        operation_class=StreamingOperation,
    )
    async def chat_completions(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[ChatCompletionRequest],
        principal: PrincipalDep,
    ) -> Response[Any]:
        svc = services(request)
        rt = svc.runtime
        body: ChatCompletionRequest = request.scope["state"].get("body") or data
        req = build_request(
            body,
            principal.caller(),
            rt.personalities,
            session_header=request.headers.get(SESSION_HEADER),
            request_id=request.scope["state"]["request_id"],
            default_model=rt.settings.model,
        )
        cid = f"chatcmpl-{req.request_id}"
        created = int(time.time())
        turn = ChatTurn(svc, request, body.stream, body.model)
        priced, system = _plan(rt, req)
        # 429 before any model call when a limit or budget cannot hold the estimate
        await turn.meter.reserve(body, priced, rt.config.context.reserve_answer_tokens, system)
        n = body.n or 1
        try:
            # places on a queued model (the embedded one) before anything is saved or sent:
            # a full queue is a 503 with Retry-After, for a stream too (its 200 goes first)
            admission = await rt.models.admit(req.model, req.personality, n)
        except CozyError:
            turn.finish()
            raise
        if not body.stream:
            try:
                dones: list[Done] = []
                for result in await asyncio.gather(*(answer(rt, r, turn) for r in fan_out(req, n))):
                    if isinstance(result, Failed):
                        return _failed_response(result, result.session_id)
                    dones.append(result)
                out = completion_body(dones, cid=cid, created=created, model=body.model)
                headers = {SESSION_HEADER: dones[0].session_id}
                if turn.degraded:  # visible to every client: a header and an extra field
                    out.cozy = turn.degraded
                    headers[DEGRADED_HEADER] = ",".join(turn.degraded["degraded"])
                return Response(out, headers=headers)
            finally:
                turn.finish()
                if admission is not None:
                    admission.release()
        # streaming: run prepare before answering, so bad sessions/models get a real status
        runs = [rt.orchestrator.run(r) for r in fan_out(req, n)]
        first: Started | None = None
        for events in runs:
            started = await until_started(events, turn)
            if isinstance(started, Failed):
                turn.finish()
                if admission is not None:
                    admission.release()
                for other in runs:
                    await other.aclose()
                return _failed_response(started, started.session_id)
            first = first or started
        assert first is not None
        writer = ChunkWriter(
            cid=cid,
            created=created,
            model=body.model,
            include_usage=bool(body.stream_options and body.stream_options.include_usage),
            fingerprint=fingerprint(first.model),
        )
        return Stream(
            sse(runs, writer, turn, admission),
            media_type="text/event-stream",
            headers={
                SESSION_HEADER: first.session_id,
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            },
        )

    @get("/models", summary="List models: personalities (cozy/<id>) and the provider's models")
    async def list_models(
        self, request: Request[Any, Any, Any], principal: PrincipalDep
    ) -> ModelList:
        rt = services(request).runtime
        data = [_model(f"cozy/{pid}", "cozy") for pid in sorted(rt.personalities.all())]
        data.insert(0, _model("cozy", "cozy"))
        try:
            infos = await asyncio.wait_for(rt.models.available(), 5)
        except (CozyError, TimeoutError, OSError):
            infos = []  # the provider is down: personalities still work once it is back
        data.extend(_model(f"{i.provider}:{i.id}", i.provider) for i in infos)
        return ModelList(object="list", data=data)

    @get("/models/{model_id:path}", summary="One model")
    async def get_model(
        self, request: Request[Any, Any, Any], model_id: PathStr, principal: PrincipalDep
    ) -> ModelObject:
        from cozy.server.chat import UnknownModel

        listed: ModelList = await self.list_models.fn(self, request, principal)
        wanted = model_id.lstrip("/")
        for item in listed.data:
            if item.id == wanted:
                return item
        raise UnknownModel(f"the model '{wanted}' does not exist", hint="see GET /v1/models")


def _model(mid: str, owner: str) -> ModelObject:
    return ModelObject(id=mid, object="model", created=0, owned_by=owner)
