"""Fragments attached to stored messages: each text kept once, messages pointing at it.

A `-f`/`@file`/text `-a` fragment (or a server `file` part, or the TUI's `/file`) is
kept once in `fragments`, by the sha256 of its text. The user's message stores only
what the user typed; `message_fragments` lists, in order, which fragments it carried
and under which label (the path or URL it came from that time). Reading a message
back puts its text together again exactly as the model saw it (`assemble`), so a file
attached in N turns costs one copy of its text plus N small link rows (as in
simonw/llm's `fragments` / `prompt_fragments`).

This module owns the text's layout because storage must rebuild it without knowing
the layers above; `cozy.core.inputs` builds the prompt with the same functions.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from cozy.storage.schema import create_all, metadata, utcnow

fragments = sa.Table(
    "fragments",
    metadata,
    sa.Column("hash", sa.String(64), primary_key=True),  # sha256 hex of the UTF-8 text
    sa.Column("source", sa.Text, nullable=False),  # where it came from the first time
    sa.Column("size", sa.Integer, nullable=False),  # characters
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

message_fragments = sa.Table(
    "message_fragments",
    metadata,
    sa.Column("message_id", sa.String(64), sa.ForeignKey("messages.id"), primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),  # order in the prompt, from 0
    sa.Column("hash", sa.String(64), sa.ForeignKey("fragments.hash"), nullable=False),
    # this attachment's label: the same text may come from another path another time
    sa.Column("source", sa.Text, nullable=False),
    sa.Index("ix_message_fragments_hash", "hash"),
)


@dataclass(slots=True, frozen=True)
class Fragment:
    """A text placed in a prompt, labelled with where it came from (a path, a URL,
    `stdin`, a file name)."""

    source: str
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


_BACKTICKS = re.compile(r"`+")


def fenced(f: Fragment) -> str:
    """The fragment labelled and fenced; the fence is longer than any backtick run
    inside, so the text cannot close it."""
    longest = max((len(run) for run in _BACKTICKS.findall(f.text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{f.source}:\n{fence}\n{f.text.rstrip()}\n{fence}"


def assemble(items: Sequence[Fragment], text: str) -> str:
    """The prompt as the model sees it: each fragment fenced, then the user's words."""
    parts = [fenced(f) for f in items]
    if text.strip():
        parts.append(text)
    return "\n\n".join(parts)


def listed(items: Sequence[Fragment]) -> list[dict[str, Any]]:
    """What a message's metadata says of its fragments (and what tells a reader to
    look them up: a message without this key has none)."""
    return [{"source": f.source, "sha256": f.sha256, "chars": len(f.text)} for f in items]


async def insert(conn: AsyncConnection, links: Iterable[tuple[str, Sequence[Fragment]]]) -> int:
    """Inside a write transaction: keep each distinct text unless it is kept already,
    and link each message (id, its fragments in order). Returns how many texts were new.

    The dialect's INSERT ... ON CONFLICT DO NOTHING: two turns attaching the same file
    at once both succeed, and a second insert of a hash is a no-op."""
    upsert: Any
    if conn.dialect.name == "postgresql":  # only the dialect in use is imported
        from sqlalchemy.dialects.postgresql import insert as upsert
    else:
        from sqlalchemy.dialects.sqlite import insert as upsert
    now = utcnow()
    texts: dict[str, Fragment] = {}
    rows: list[dict[str, Any]] = []
    for message_id, items in links:
        for position, f in enumerate(items):
            digest = f.sha256
            texts.setdefault(digest, f)
            rows.append(
                {"message_id": message_id, "position": position, "hash": digest, "source": f.source}
            )
    new = 0
    for digest, f in texts.items():
        stmt = (
            upsert(fragments)
            .values(hash=digest, source=f.source, size=len(f.text), content=f.text, created_at=now)
            .on_conflict_do_nothing()
        )
        new += int((await conn.execute(stmt)).rowcount or 0)
    if rows:
        await conn.execute(message_fragments.insert(), rows)
    return new


def links_stmt(message_ids: Sequence[str]) -> Any:
    """Each listed message's fragments in order: (message_id, source, content)."""
    link = message_fragments.c
    return (
        sa.select(link.message_id, link.source, fragments.c.content)
        .join(fragments, fragments.c.hash == link.hash)
        .where(link.message_id.in_(list(message_ids)))
        .order_by(link.message_id, link.position)
    )


def read_links(conn: Connection, message_ids: Sequence[str]) -> dict[str, list[Fragment]]:
    """On a sync connection: the fragments of each listed message that has any."""
    out: dict[str, list[Fragment]] = {}
    for i in range(0, len(message_ids), 500):  # bounded IN lists
        for mid, source, content in conn.execute(links_stmt(message_ids[i : i + 500])):
            out.setdefault(str(mid), []).append(Fragment(str(source), str(content)))
    return out


def move_inline_text(conn: Connection) -> None:
    """Migration step 0012: questions stored before the links existed carried their
    fragments' text inline (and in `fragments`). Each one whose text is exactly the
    fenced fragments then the question keeps only the question and points at the
    kept texts; reading it back gives the same text. Anything else (a fragment never
    kept, another layout) stays as it is. Safe to run again: a linked message is
    skipped."""
    from cozy.storage.schema import messages

    create_all(conn, [message_fragments])
    m = messages.c
    ids = [
        str(r[0])
        for r in conn.execute(
            sa.select(m.id)
            .where(m.role == "user", sa.cast(m.metadata, sa.Text).like('%"fragments"%'))
            .where(~sa.exists().where(message_fragments.c.message_id == m.id))
            .order_by(m.id)
        )
    ]
    for i in range(0, len(ids), 200):
        batch = conn.execute(
            sa.select(m.id, m.content, m.metadata).where(m.id.in_(ids[i : i + 200]))
        ).all()
        for message_id, content, meta in batch:
            _move_one(conn, str(message_id), str(content or ""), meta or {})


def _move_one(conn: Connection, message_id: str, content: str, meta: dict[str, Any]) -> None:
    from cozy.storage.schema import messages

    listed_ = [f for f in meta.get("fragments") or [] if isinstance(f, dict)]
    hashes = [str(f.get("sha256")) for f in listed_]
    if not hashes:
        return
    kept = dict(
        conn.execute(
            sa.select(fragments.c.hash, fragments.c.content).where(fragments.c.hash.in_(hashes))
        ).all()
    )
    if any(h not in kept for h in hashes):
        return  # a text that was never kept: the message keeps it inline
    items = [
        Fragment(str(f.get("source")), str(kept[h])) for f, h in zip(listed_, hashes, strict=True)
    ]
    prefix = assemble(items, "")
    typed = "" if content == prefix else content.removeprefix(prefix + "\n\n")
    if typed == content or assemble(items, typed) != content:
        return  # not the layout `assemble` makes (e.g. an MCP prompt in front)
    conn.execute(sa.update(messages).where(messages.c.id == message_id).values(content=typed))
    conn.execute(
        message_fragments.insert(),
        [
            {"message_id": message_id, "position": n, "hash": h, "source": f.source}
            for n, (h, f) in enumerate(zip(hashes, items, strict=True))
        ],
    )
