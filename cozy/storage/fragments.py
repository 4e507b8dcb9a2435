"""`cozy fragments list/show`: the attached texts, each kept once by its sha256.

The tables, and how a message's text is put back together, live in attach.py; a
turn's fragments are written with its user message (`Store.add_messages`). Rows are
never rewritten: the hash is the text's identity.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from cozy.core.errors import NotFoundError, UsageError
from cozy.storage.attach import fragments, message_fragments
from cozy.storage.store import Store

__all__ = ["FragmentRow", "Fragments", "fragments"]


@dataclass(slots=True)
class FragmentRow:
    hash: str
    source: str
    size: int
    created_at: float
    content: str = ""
    messages: int = 0  # how many stored messages carry it


class Fragments:
    """Fragment store over the shared Store (they are written with their messages,
    see `Store.add_messages`)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def list(self) -> list[FragmentRow]:
        """Every kept fragment, newest first, without its text, with how many messages
        carry it."""
        c = fragments.c
        uses = (
            sa.select(sa.func.count())
            .select_from(message_fragments)
            .where(message_fragments.c.hash == c.hash)
            .scalar_subquery()
        )
        stmt = sa.select(c.hash, c.source, c.size, c.created_at, sa.literal(""), uses).order_by(
            c.created_at.desc(), c.hash
        )
        return [FragmentRow(*r) for r in await self.store.read(stmt)]

    async def get(self, ref: str) -> FragmentRow:
        """The fragment whose hash is `ref` or starts with it (a unique prefix)."""
        ref = ref.strip().lower()
        if not ref or any(ch not in "0123456789abcdef" for ch in ref):
            raise UsageError(
                f"'{ref}' is not a fragment hash",
                hint="pass a hash or its start as `cozy fragments list` prints it",
            )
        c = fragments.c
        # hex only (checked above), so the prefix has no LIKE wildcards to escape
        stmt = (
            sa.select(c.hash, c.source, c.size, c.created_at, c.content)
            .where(c.hash.like(ref + "%"))
            .order_by(c.hash)
            .limit(2)
        )
        rows = await self.store.read(stmt)
        if not rows:
            raise NotFoundError(
                f"no fragment '{ref}'", hint="list fragments with `cozy fragments list`"
            )
        if len(rows) > 1:
            raise UsageError(
                f"'{ref}' starts more than one fragment's hash",
                hint="give more characters of the hash (see `cozy fragments list`)",
            )
        return FragmentRow(*rows[0])
