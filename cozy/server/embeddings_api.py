"""`POST /v1/embeddings` (OpenAI's shape), in batches a deadline or a departed client
can stop."""

from __future__ import annotations

import asyncio
import base64
import struct
from typing import Any, cast

from litestar import Controller, Request, post
from litestar.params import JSONBody

from cozy.engines.base import EmbedEngine
from cozy.server.chat import BadParam
from cozy.server.deps import PrincipalDep, services, until_disconnect
from cozy.server.responses import EmbeddingList, EmbeddingObject, EmbeddingUsage
from cozy.server.schemas import EmbeddingRequest


class EmbeddingsController(Controller):
    path = "/v1"
    tags = ("openai",)

    @post("/embeddings", status_code=200, summary="Create embeddings")
    async def embeddings(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[EmbeddingRequest],
        principal: PrincipalDep,
    ) -> EmbeddingList:
        from cozy.core.errors import ConfigError

        engine = await services(request).runtime.engine("embed")
        if not isinstance(engine, EmbedEngine):
            raise ConfigError(
                "no embed engine is configured",
                hint="set `embed: {provider: local}` in engines.yaml (see `cozy config path`)",
            )
        body: EmbeddingRequest = request.scope["state"].get("body") or data
        try:
            inputs = body.inputs()
        except ValueError as exc:
            raise BadParam(str(exc), param="input") from None
        server = services(request).server
        texts = [t for t in inputs if isinstance(t, str)]
        arrays = [t for t in inputs if isinstance(t, list)]
        tokens = sum(max(1, len(t) // 4) for t in texts) + sum(len(t) for t in arrays)
        if len(inputs) > server.embed_max_inputs:
            raise BadParam(
                f"{len(inputs):,} inputs is more than this server embeds in one request "
                f"({server.embed_max_inputs:,})",
                param="input",
                hint="split the inputs over several requests",
            )
        if tokens > server.embed_max_tokens:
            raise BadParam(
                f"the inputs hold about {tokens:,} tokens; one request may hold "
                f"{server.embed_max_tokens:,}",
                param="input",
                hint="split the inputs over several requests",
            )
        vectors = await until_disconnect(
            request,
            _embed_batches(engine, texts or arrays, server.embed_timeout),
        )
        out = []
        for i, vec in enumerate(vectors):
            emb: list[float] | str = vec
            if body.encoding_format == "base64":
                emb = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode()
            out.append(EmbeddingObject(object="embedding", index=i, embedding=emb))
        await services(request).limiter.add_tokens(principal.limit_scopes, tokens)
        usage = EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens)
        return EmbeddingList(object="list", data=out, model=body.model, usage=usage)


EMBED_BATCH = 32  # inputs per worker-thread call: the unit a cancelled request still pays


async def _embed_batches(
    engine: EmbedEngine, items: list[str] | list[list[int]], limit: float
) -> list[list[float]]:
    """Embed in batches, so a deadline or a client that left stops the work between two
    batches: one `to_thread` call cannot be interrupted, a loop over small ones can."""
    from cozy.core.errors import EngineTimeout

    out: list[list[float]] = []
    try:
        async with asyncio.timeout(limit):
            for i in range(0, len(items), EMBED_BATCH):
                batch = items[i : i + EMBED_BATCH]
                if batch and isinstance(batch[0], str):
                    out.extend(await engine.embed(batch))
                else:
                    out.extend(await engine.embed_tokens(cast(list[list[int]], batch)))
    except TimeoutError:
        raise EngineTimeout(
            f"embedding {len(items):,} inputs took longer than {limit:g}s ({len(out):,} done)",
            hint="send fewer inputs per request, or raise COZY_SERVER_EMBED_TIMEOUT",
        ) from None
    return out
