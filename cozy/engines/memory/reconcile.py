"""Writes to facts: extraction results and the user's own edits.

Every change keeps history (old text, new text, reason); forgetting is a soft
delete that `restore` undoes; exact and near duplicates are not stored twice.
One extraction is applied in one transaction, or not at all.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from cozy.core.errors import UsageError
from cozy.core.types import Message
from cozy.engines.memory.extract import Known, extract
from cozy.engines.memory.parts import MemoryParts
from cozy.engines.memory.repo import MemoryRow
from cozy.engines.memory.texthash import normalise
from cozy.storage.jobs import mark_applied
from cozy.storage.schema import new_id

log = logging.getLogger("cozy.memory")

MAX_FACT_CHARS = 2000


def _jaccard(a: str, b: str) -> float:
    sa_, sb = set(normalise(a).split()), set(normalise(b).split())
    if not sa_ or not sb:
        return 0.0
    return len(sa_ & sb) / len(sa_ | sb)


async def near_duplicate(
    mem: MemoryParts,
    user_id: str,
    text: str,
    vec: Sequence[float] | None,
    candidates: Sequence[MemoryRow] = (),
) -> str | None:
    """The id of an active fact saying the same thing, if any."""
    if vec is not None:
        idx = await mem.index(user_id)
        near = idx.search(vec, 5)
        rows = await mem.repo.get_many([mid for mid, _ in near])
        for mid, score in near:
            row = rows.get(mid)
            if row and row.kind == "fact" and score >= mem.dedupe_threshold:
                return mid
    for row in candidates:
        if row.kind == "fact" and _jaccard(row.text, text) >= 0.85:
            return row.id
    return None


def _clean(text: str) -> str:
    text = " ".join(text.split())
    if not text:
        raise UsageError("a memory cannot be empty", hint="pass the text to remember")
    if len(text) > MAX_FACT_CHARS:
        raise UsageError(
            f"a memory holds at most {MAX_FACT_CHARS} characters (got {len(text)})",
            hint="shorten it, or add long text as knowledge with `cozy knowledge add`",
        )
    return text


async def extract_and_apply(  # noqa: C901 - memory internals: the retrieval-kernel work (#23)
    mem: MemoryParts,
    messages: Sequence[Message],
    *,
    user_id: str,
    session_id: str | None = None,
    personality_id: str | None = None,
    source_ids: Sequence[str] = (),
    effect_key: str | None = None,
) -> list[str]:
    """Extract facts from new messages and reconcile them with similar memories."""
    router = mem.ctx.router
    if router is None:
        raise UsageError("memory extraction needs the runtime's AI engine")
    route = await router.resolve(mem.model)
    query = "\n".join(m.content for m in messages if m.role == "user")[:4000]
    similar = await mem.search(query, user_id=user_id, limit=8, kinds=("fact",))
    rows = await mem.repo.get_many([h.id for h in similar])
    known = [Known(f"m{i}", h.id, h.text) for i, h in enumerate(similar, 1)]
    by_alias = {k.alias: k.id for k in known}
    result = await extract(
        route.engine,
        route.model,
        messages,
        known,
        attempts=mem.extract_attempts,
        max_tokens=mem.extract_max_tokens,
    )
    # validate and embed everything before the transaction: all or nothing
    ops: list[tuple[str, str, str | None, str]] = []  # (op, text, memory id, reason)
    for op in result.operations:
        target = by_alias.get(op.id or "") if op.id else None
        text = " ".join(op.text.split())
        if op.op == "add" and text:
            ops.append(("add", text, None, op.reason))
        elif op.op == "update" and text and target:
            ops.append(("update", text, target, op.reason))
        elif op.op == "update" and text:
            ops.append(("add", text, None, op.reason or "update of an unknown memory"))
        elif op.op == "obsolete" and target:
            ops.append(("obsolete", "", target, op.reason))
        else:
            log.info("memory: ignored operation %s", op.model_dump())
    texts = [t for kind, t, _, _ in ops if kind in ("add", "update")]
    vectors = await mem.embed(texts) if texts else None
    vec_of = dict(zip(texts, vectors, strict=True)) if vectors else {}
    model = mem.embed_model()
    new_ids = {t: new_id("mem") for t in texts}
    dupes: dict[str, str | None] = {}
    for t in texts:
        dupes[t] = await near_duplicate(mem, user_id, t, vec_of.get(t), list(rows.values()))
    added: list[tuple[str, Sequence[float] | None]] = []
    reason_src = list(source_ids)

    async def fn(conn: AsyncConnection) -> list[str]:
        if effect_key is not None and not await mark_applied(conn, effect_key):
            return []  # a re-run after a crash: already applied
        touched: list[str] = []
        for kind, text, target, reason in ops:
            if kind == "add":
                if await mem.repo.find_hash(conn, user_id, text) or dupes.get(text):
                    continue
                mid = await mem.repo.insert(
                    conn,
                    memory_id=new_ids[text],
                    user_id=user_id,
                    kind="fact",
                    text=text,
                    vector=vec_of.get(text),
                    embed_model=model,
                    personality_id=personality_id,
                    session_id=session_id,
                    source_ids=reason_src,
                    reason=reason or "extracted from the conversation",
                )
                touched.append(mid)
                added.append((mid, vec_of.get(text)))
            elif target is not None and target in rows:
                row = rows[target]
                if kind == "update":
                    if normalise(row.text) == normalise(text):
                        continue
                    await mem.repo.update_text(
                        conn,
                        row,
                        text,
                        action="update",
                        reason=reason or "updated from the conversation",
                        vector=vec_of.get(text),
                        embed_model=model,
                        source_ids=reason_src,
                    )
                else:
                    await mem.repo.set_status(
                        conn, row, "obsolete", action="obsolete", reason=reason or "no longer true"
                    )
                touched.append(target)
        return touched

    stale = any(kind != "add" for kind, _, _, _ in ops)
    return list(await mem.write(user_id, fn, added, stale=stale))


async def add_text(
    mem: MemoryParts, user_id: str, text: str, *, reason: str = "added by the user"
) -> tuple[str, bool]:
    """Add a fact by hand. Returns (id, created): an existing duplicate is returned as is."""
    text = _clean(text)
    vectors = await mem.embed([text])
    vec = vectors[0] if vectors else None
    dupe = await near_duplicate(mem, user_id, text, vec)
    if dupe is not None:
        return dupe, False
    mid = new_id("mem")

    async def fn(conn: AsyncConnection) -> tuple[str, bool]:
        existing = await mem.repo.find_hash(conn, user_id, text)
        if existing:
            return existing, False
        await mem.repo.insert(
            conn,
            memory_id=mid,
            user_id=user_id,
            kind="fact",
            text=text,
            vector=vec,
            embed_model=mem.embed_model(),
            reason=reason,
        )
        return mid, True

    result: tuple[str, bool] = await mem.write(user_id, fn, [(mid, vec)])
    return result


async def edit(
    mem: MemoryParts, user_id: str, memory_id: str, text: str, *, reason: str = "edited by the user"
) -> MemoryRow:
    text = _clean(text)
    row = await mem.repo.get(memory_id, user_id)
    vectors = await mem.embed([text])

    async def fn(conn: AsyncConnection) -> None:
        await mem.repo.update_text(
            conn,
            row,
            text,
            action="edit",
            reason=reason,
            vector=vectors[0] if vectors else None,
            embed_model=mem.embed_model(),
        )

    await mem.write(user_id, fn, stale=True)
    return await mem.repo.get(memory_id, user_id)


async def set_status(
    mem: MemoryParts, user_id: str, memory_id: str, status: str, *, reason: str
) -> MemoryRow:
    """forget (status deleted) or restore (status active), with history."""
    row = await mem.repo.get(memory_id, user_id)
    action = "restore" if status == "active" else "forget"
    if row.status == status:
        return row

    async def fn(conn: AsyncConnection) -> None:
        await mem.repo.set_status(conn, row, status, action=action, reason=reason)

    await mem.write(user_id, fn, stale=True)
    return await mem.repo.get(memory_id, user_id)


async def export(mem: MemoryParts, user_id: str) -> dict[str, Any]:
    rows = await mem.repo.list_rows(
        user_id, kinds=("fact", "turn"), statuses=("active", "obsolete", "deleted"), limit=None
    )
    facts = []
    for r in rows:
        item = r.to_dict()
        if r.kind == "fact":
            item["history"] = await mem.repo.history_of(r.id, user_id)
        facts.append(item)
    return {"user_id": user_id, "memories": facts, "count": len(facts)}


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    import numpy as np

    va, vb = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
    return float(va @ vb / ((np.linalg.norm(va) * np.linalg.norm(vb)) or 1.0))
