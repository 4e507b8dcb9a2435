"""Indexing raw conversation turns with their neighbours (contextual indexing).

A turn alone often does not say what it is about ("Yes, it was in Lisbon!"), and
the question it answers sits in the turn before. So each turn is indexed with:

- its vector: the mean of the embedding of the turn alone and of the previous turn
  followed by the turn (its meaning, and its meaning in the conversation);
- its keyword `context`: the text of the turns before and after it in the session
  (ranked by BM25 at a lower weight than the turn's own text);
- `prev` / `next` links in its metadata, so search can spread a hit's score to
  its neighbours without another query.

The next turn is not known when a turn is indexed: indexing it later appends its
text to the previous turn's context and sets the link (one small update, no
re-embedding). Option `turn_context: false` indexes each turn alone (one embedding
per turn instead of two; the links stay). Measured on LoCoMo-dev in
bench/locomo_eval.py (`--plain` adds the turn-alone baselines).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlalchemy.ext.asyncio import AsyncConnection

from cozy.engines.memory.parts import MemoryParts
from cozy.engines.memory.types import TurnInput, chunk
from cozy.storage.jobs import mark_applied
from cozy.storage.schema import new_id

BEFORE_CHARS = 400  # of the previous turn, in front of the turn's own text for its vector
CONTEXT_CHARS = 600  # of each neighbour, in the keyword context


def _tail(text: str, n: int) -> str:
    return text if len(text) <= n else text[-n:]


def mean_vectors(
    vectors: list[list[float]] | None, n: int, with_before: Sequence[int]
) -> list[np.ndarray | None]:
    """Turn vector i: mean of its own vector and its in-context one (when it has one)."""
    if vectors is None:
        return [None] * n
    out: list[np.ndarray | None] = [np.asarray(v, dtype=np.float32) for v in vectors[:n]]
    for j, i in enumerate(with_before):
        own = out[i]
        assert own is not None
        out[i] = (own + np.asarray(vectors[n + j], dtype=np.float32)) / 2
    return out


async def index_turns(
    mem: MemoryParts,
    turns: Sequence[TurnInput],
    *,
    user_id: str,
    session_id: str | None = None,
    personality_id: str | None = None,
) -> list[str]:
    """Index raw messages (chunked) for recall; idempotent per message id."""
    pieces: list[tuple[TurnInput, int, str]] = []
    for t in turns:
        for i, part in enumerate(chunk(t.content, mem.chunk_chars, mem.max_chunks)):
            pieces.append((t, i, part))
    if not pieces:
        return []
    prev = await mem.repo.last_turn(user_id, session_id) if session_id else None
    befores: list[str | None] = []
    last = prev[1] if prev else None
    for _t, _i, part in pieces:
        befores.append(last)
        last = part
    with_before = [i for i, b in enumerate(befores) if b] if mem.turn_context else []
    texts = [p[2] for p in pieces]
    texts += [f"{_tail(befores[i] or '', BEFORE_CHARS)}\n{pieces[i][2]}" for i in with_before]
    vectors = mean_vectors(await mem.embed(texts), len(pieces), with_before)
    model = mem.embed_model()
    ids = [new_id("mem") for _ in pieces]
    added: list[tuple[str, Sequence[float] | None]] = []

    async def fn(conn: AsyncConnection) -> list[str]:
        done: dict[str, bool] = {}
        for t, _i, _part in pieces:
            if t.message_id not in done:
                done[t.message_id] = await mark_applied(conn, f"memory.turn:{t.message_id}")
        todo = [n for n, p in enumerate(pieces) if done[p[0].message_id]]
        if not todo:
            return []
        prev_id = prev[0] if prev else None
        prev_text = prev[1] if prev else None
        for k, n in enumerate(todo):
            t, i, part = pieces[n]
            nxt = pieces[todo[k + 1]][2] if k + 1 < len(todo) else None
            around = [_tail(prev_text, CONTEXT_CHARS)] if prev_text else []
            if nxt:
                around.append(nxt[:CONTEXT_CHARS])
            context = "\n".join(around) if mem.turn_context else ""
            vec = vectors[n]
            await mem.repo.insert(
                conn,
                memory_id=ids[n],
                user_id=user_id,
                kind="turn",
                text=part,
                context=context or None,
                vector=None if vec is None else vec.tolist(),
                embed_model=model,
                personality_id=personality_id,
                session_id=session_id,
                source_ids=[t.message_id],
                occurred_at=t.occurred_at,
                metadata={
                    "role": t.role,
                    "message_id": t.message_id,
                    "chunk": i,
                    "prev": prev_id,
                    "next": ids[todo[k + 1]] if k + 1 < len(todo) else None,
                },
            )
            if k == 0 and prev is not None:
                extra = part[:CONTEXT_CHARS] if mem.turn_context else ""
                await mem.repo.link_next(conn, prev[0], ids[n], extra)
            added.append((ids[n], None if vec is None else vec.tolist()))
            prev_id, prev_text = ids[n], part
        return [ids[n] for n in todo]

    return list(await mem.write(user_id, fn, added))
