"""Branches of a conversation, and taking back its last exchange.

A branch is a session of its own: the messages before the point where it leaves the
original are copied into it (new ids, same order and content), and its metadata says
where it came from: `{"branch": {"of": session, "root": first session, "at": message}}`.
The original is never changed, so every branch stays whole and can be reopened like
any session (`cozy chat -s ID`, the sidebar, `/branches`). Copies go in without the
turn hooks: their memories were extracted when they were first said.

Why copies and not a tree of messages with a parent pointer: every reader of a
session (the orchestrator's history window, summaries, export, the server's session
API, search) reads "the messages of a session, in id order"; a tree would change all
of them. A fork costs one INSERT of the copied rows. (Web chats such as Open WebUI keep
such a tree and show sibling arrows; in a terminal the session list is the navigation,
as with opencode's session fork.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from cozy.core.errors import NotFoundError, UsageError
from cozy.storage import attach
from cozy.storage.rows import MessageRow, SessionRow, message_of, session_of, session_params
from cozy.storage.schema import messages, new_id, sessions, utcnow
from cozy.storage.store import Store

BRANCH_LIMIT = 200  # sessions scanned when listing a conversation's branches


@dataclass(slots=True)
class Branch:
    session: SessionRow
    of: str | None  # the session it was branched from (None: the first one)
    at: str | None  # the message it left the original before
    message_count: int


def branch_info(row: SessionRow) -> dict[str, Any]:
    info = (row.metadata or {}).get("branch")
    return info if isinstance(info, dict) else {}


def root_of(row: SessionRow) -> str:
    return str(branch_info(row).get("root") or row.id)


class Branches:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def fork(
        self, session_id: str, user_id: str, *, before: str | None, title: str | None = None
    ) -> SessionRow:
        """A new session holding the messages of `session_id` that come before message
        `before` (all of them when None); the original is left as it is."""
        store = self.store
        src = await store.get_session(session_id, user_id=user_id)
        stmt = sa.select(messages).where(messages.c.session_id == src.id)
        if before is not None:
            found = await store.read(
                sa.select(messages.c.id).where(
                    messages.c.session_id == src.id, messages.c.id == before
                )
            )
            if not found:
                raise NotFoundError(
                    f"no message '{before}' in session '{src.id}'",
                    hint="the view may be stale: reopen the session",
                )
            stmt = stmt.where(messages.c.id < before)
        rows = await store.with_fragments(
            [message_of(r) for r in await store.read(stmt.order_by(messages.c.id))]
        )
        root = root_of(src)
        row = store.new_session_row(
            user_id,
            src.personality_id,
            title=title or src.title,
            model=src.model,
            metadata={
                **{k: v for k, v in (src.metadata or {}).items() if k != "branch"},
                "branch": {"of": src.id, "root": root, "at": before},
            },
        )
        now = utcnow()
        copies = [_copy(m, row.id, now + i * 1e-6) for i, m in enumerate(rows)]
        # a copy points at the same kept fragments (their text is not copied)
        links = [(c["id"], m.fragments) for c, m in zip(copies, rows, strict=True) if m.fragments]

        async def insert(conn: AsyncConnection) -> None:
            await conn.execute(sessions.insert(), {**session_params(row), "updated_at": now})
            if copies:
                await conn.execute(messages.insert(), copies)
            if links:
                await attach.insert(conn, links)

        await store.write(insert)
        row.updated_at = now
        return row

    async def take_back_last_exchange(self, session_id: str, user_id: str) -> list[MessageRow]:
        """Delete the last user message and everything after it (the answer, tool
        calls and results); returns the deleted rows, oldest first."""
        store = self.store
        src = await store.get_session(session_id, user_id=user_id)
        last_user = await store.read(
            sa.select(messages.c.id)
            .where(messages.c.session_id == src.id, messages.c.role == "user")
            .order_by(messages.c.id.desc())
            .limit(1)
        )
        if not last_user:
            raise UsageError("nothing to undo: this session has no message of yours yet")
        start = str(last_user[0][0])
        gone = await store.with_fragments(
            [
                message_of(r)
                for r in await store.read(
                    sa.select(messages)
                    .where(messages.c.session_id == src.id, messages.c.id >= start)
                    .order_by(messages.c.id)
                )
            ]
        )

        async def delete(conn: AsyncConnection) -> None:
            # the links go with their messages; the kept texts stay (other messages,
            # or `cozy fragments show`, may still use them)
            await conn.execute(
                sa.delete(attach.message_fragments).where(
                    attach.message_fragments.c.message_id.in_([m.id for m in gone])
                )
            )
            await conn.execute(
                sa.delete(messages).where(messages.c.session_id == src.id, messages.c.id >= start)
            )
            await conn.execute(
                sa.update(sessions).where(sessions.c.id == src.id).values(updated_at=utcnow())
            )

        await store.write(delete)
        return gone

    async def of_conversation(self, session_id: str, user_id: str) -> list[Branch]:
        """Every live branch of the conversation `session_id` belongs to (the first
        session included), oldest first."""
        store = self.store
        src = await store.get_session(session_id, user_id=user_id)
        root = root_of(src)
        count = (
            sa.select(sa.func.count())
            .select_from(messages)
            .where(messages.c.session_id == sessions.c.id)
            .scalar_subquery()
        )
        rows = await store.read(
            sa.select(sessions, count.label("message_count"))
            .where(sessions.c.user_id == user_id, sessions.c.deleted_at.is_(None))
            .order_by(sessions.c.updated_at.desc())
            .limit(BRANCH_LIMIT)
        )
        out: list[Branch] = []
        for r in rows:
            row = session_of(r)
            if row.id != root and root_of(row) != root:
                continue
            info = branch_info(row)
            out.append(Branch(row, info.get("of"), info.get("at"), row.message_count or 0))
        if all(b.session.id != src.id for b in out):  # older than the scanned window
            out.append(Branch(src, branch_info(src).get("of"), None, src.message_count or 0))
        out.sort(key=lambda b: b.session.created_at)
        return out


def _copy(m: MessageRow, session_id: str, created_at: float) -> dict[str, Any]:
    return {
        "id": new_id("msg"),
        "session_id": session_id,
        "role": m.role,
        "content": m.own_text,
        "tool_calls": m.tool_calls,
        "tool_call_id": m.tool_call_id,
        "name": m.name,
        "status": m.status,
        "metadata": {**(m.metadata or {}), "copied_from": m.id},
        "prompt_tokens": m.prompt_tokens,
        "completion_tokens": m.completion_tokens,
        "latency_ms": m.latency_ms,
        "created_at": created_at,
    }
