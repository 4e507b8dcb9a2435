"""Migration 0012 on SQLite and PostgreSQL: questions stored before the links existed
(fragment text inline) keep only the question and point at the kept text; they read
back exactly as before, and what does not match the known layout is left alone."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from cozy.storage.attach import Fragment, assemble, fragments, listed, message_fragments
from cozy.storage.schema import messages, schema_migrations, utcnow
from cozy.storage.store import NewMessage, Store


async def test_inline_fragments_move_out_and_read_back_the_same(db_url: str) -> None:
    notes = Fragment("notes.md", "ship on Friday\n")
    code = Fragment("a.py", "x = '```'\n")
    store = await Store.open(db_url)
    try:
        s = await store.create_session("alice", "assistant")
        # as the previous cozy stored them: the whole text inline, the hashes in the
        # metadata, each text kept in `fragments` too
        old = [
            (assemble([notes, code], "when?"), [notes, code]),
            (assemble([notes], ""), [notes]),  # fragments alone, no question
            ("an MCP prompt first\n\n" + assemble([notes], "odd"), [notes]),  # other layout
            (
                assemble([Fragment("gone.txt", "never kept\n")], "q"),
                [Fragment("gone.txt", "never kept\n")],
            ),
        ]
        ids = await store.add_messages(
            s.id,
            [
                NewMessage("user", text, metadata={"fragments": listed(items)})
                for text, items in old
            ],
        )

        async def prepare(conn: AsyncConnection) -> None:
            for f in (notes, code):
                await conn.execute(
                    fragments.insert().values(
                        hash=f.sha256,
                        source=f.source,
                        size=len(f.text),
                        content=f.text,
                        created_at=utcnow(),
                    )
                )
            await conn.execute(
                sa.delete(schema_migrations).where(
                    schema_migrations.c.name == "0012_fragments_out_of_messages"
                )
            )

        await store.write(prepare)
    finally:
        await store.close()

    store = await Store.open(db_url)  # runs 0012 again
    try:
        rows = await store.list_messages(s.id)
        assert [r.content for r in rows] == [text for text, _ in old]  # read back the same
        assert [r.typed for r in rows] == ["when?", "", None, None]
        assert rows[0].fragments == [notes, code]
        raw = dict(
            await store.read(
                sa.select(messages.c.id, messages.c.content).where(messages.c.session_id == s.id)
            )
        )
        assert raw[ids[0]] == "when?" and raw[ids[1]] == ""
        assert raw[ids[2]] == old[2][0] and raw[ids[3]] == old[3][0]  # left alone
        links = await store.read(
            sa.select(
                message_fragments.c.message_id,
                message_fragments.c.position,
                message_fragments.c.source,
            ).order_by(message_fragments.c.message_id, message_fragments.c.position)
        )
        assert [tuple(r) for r in links] == [
            (ids[0], 0, "notes.md"), (ids[0], 1, "a.py"), (ids[1], 0, "notes.md"),
        ]  # fmt: skip
    finally:
        await store.close()
