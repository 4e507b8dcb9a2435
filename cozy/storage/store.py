"""The SQL store: users, sessions, messages, audit events.

One code path for SQLite and Postgres (SQLAlchemy Core). Rows come back as small
dataclasses; no ORM objects leak out of storage.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from cozy.core.errors import NotFoundError, StorageError, UsageError
from cozy.storage.rows import (
    MessageRow,
    NewMessage,
    SessionRow,
    message_of,
    message_rows,
    session_of,
    session_params,
)
from cozy.storage.schema import audit_events, messages, new_id, sessions, users, utcnow
from cozy.storage.store_base import StoreBase

__all__ = ["MessageRow", "NewMessage", "SessionRow", "Store", "TxnStep"]
TxnStep = Callable[[AsyncConnection], Awaitable[Any]]


# The statements of every saved turn, built once and executed with parameters: no
# per-call statement construction or cache-key walk in SQLAlchemy.
_INSERT_SESSION = sessions.insert()
_INSERT_MESSAGES = messages.insert()
_TOUCH = (
    sessions.update()
    .where(sessions.c.id == sa.bindparam("b_sid"))
    .values(updated_at=sa.bindparam("b_now"))
)
_TOUCH_TITLE = _TOUCH.values(
    title=sa.func.coalesce(sessions.c.title, sa.bindparam("b_title", type_=sa.String))
)


class Store(StoreBase):
    """Users, sessions, messages and audit events. Open with `await Store.open(url)`."""

    # --- users -------------------------------------------------------------
    async def ensure_user(
        self, user_id: str, *, name: str | None = None, role: str = "user"
    ) -> None:
        if user_id in self._users_seen:
            return
        rows = await self.read(sa.select(users.c.id).where(users.c.id == user_id))
        if not rows:

            async def insert(conn: AsyncConnection) -> None:
                exists = (
                    await conn.execute(sa.select(users.c.id).where(users.c.id == user_id))
                ).first()
                if exists is None:
                    await conn.execute(
                        sa.insert(users).values(
                            id=user_id, name=name or user_id, role=role, created_at=utcnow()
                        )
                    )

            await self.write(insert)
        self._users_seen.add(user_id)

    # --- sessions ----------------------------------------------------------
    async def create_session(
        self,
        user_id: str,
        personality_id: str,
        *,
        title: str | None = None,
        model: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> SessionRow:
        await self.ensure_user(user_id)
        row = self.new_session_row(
            user_id, personality_id, title=title, model=model, metadata=metadata
        )
        await self.insert_session(row)
        return row

    @staticmethod
    def new_session_row(
        user_id: str,
        personality_id: str,
        *,
        title: str | None = None,
        model: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> SessionRow:
        """A session not stored yet: `insert_session` it, or pass it to `add_messages`."""
        now = utcnow()
        return SessionRow(
            id=new_id("ses"),
            user_id=user_id,
            personality_id=personality_id,
            title=title,
            model=model,
            created_at=now,
            updated_at=now,
            metadata=metadata or {},
        )

    async def insert_session(self, row: SessionRow) -> None:
        """Store a row from `new_session_row` (its user must exist: `ensure_user`)."""

        async def insert(conn: AsyncConnection) -> None:
            await conn.execute(_INSERT_SESSION, session_params(row))

        await self.write(insert)

    async def get_session(
        self, session_id: str, *, user_id: str | None = None, include_deleted: bool = False
    ) -> SessionRow:
        """Return the session or raise NotFoundError (also for another user's session).
        A unique prefix of a live session's id names it too."""
        rows = await self.read(self._session_stmt(session_id, user_id, include_deleted))
        if not rows:
            full = await self.session_id_for(session_id, user_id)
            rows = await self.read(self._session_stmt(full, user_id, include_deleted))
        if not rows:
            raise NotFoundError(
                f"no session '{session_id}'", hint="list sessions with `cozy sessions list`"
            )
        return session_of(rows[0])

    @staticmethod
    def _session_stmt(
        session_id: str, user_id: str | None = None, include_deleted: bool = False
    ) -> Any:
        stmt = sa.select(sessions).where(sessions.c.id == session_id)
        if user_id is not None:
            stmt = stmt.where(sessions.c.user_id == user_id)
        if not include_deleted:
            stmt = stmt.where(sessions.c.deleted_at.is_(None))
        return stmt

    async def last_session(self, user_id: str) -> SessionRow | None:
        """The session used last: the one with the newest message (ids sort by time), so
        renaming an old session does not make it "last"."""
        newest = (
            sa.select(sa.func.max(messages.c.id))
            .where(messages.c.session_id == sessions.c.id)
            .scalar_subquery()
        )
        rows = await self.read(
            sa.select(sessions)
            .where(sessions.c.user_id == user_id, sessions.c.deleted_at.is_(None))
            .order_by(sa.func.coalesce(newest, "").desc(), sessions.c.updated_at.desc())
            .limit(1)
        )
        return session_of(rows[0]) if rows else None

    async def session_id_for(self, ref: str, user_id: str | None = None) -> str:
        """The full id of the one live session whose id starts with `ref` (with or
        without `ses_`); a clear error when none or several do."""
        core = ref.strip().removeprefix("ses_")
        if len(core) < 4:  # too short to mean one session
            raise NotFoundError(
                f"no session '{ref}'", hint="list sessions with `cozy sessions list`"
            )
        stmt = (
            sa.select(sessions.c.id)
            .where(
                sessions.c.id.startswith(f"ses_{core}", autoescape=True),
                sessions.c.deleted_at.is_(None),
            )
            .limit(5)
        )
        if user_id is not None:
            stmt = stmt.where(sessions.c.user_id == user_id)
        ids = [str(r[0]) for r in await self.read(stmt)]
        if not ids:
            raise NotFoundError(
                f"no session '{ref}'", hint="list sessions with `cozy sessions list`"
            )
        if len(ids) > 1:
            raise UsageError(
                f"'{ref}' is the start of {len(ids) if len(ids) < 5 else 'several'} sessions' ids",
                hint="give more of the id (`cozy sessions list` shows them)",
            )
        return ids[0]

    async def list_sessions(
        self,
        user_id: str,
        *,
        limit: int = 50,
        offset: int = 0,
        query: str | None = None,
        include_deleted: bool = False,
    ) -> list[SessionRow]:
        count = (
            sa.select(sa.func.count())
            .select_from(messages)
            .where(messages.c.session_id == sessions.c.id)
            .scalar_subquery()
            .label("message_count")
        )
        stmt = sa.select(sessions, count).where(sessions.c.user_id == user_id)
        if not include_deleted:
            stmt = stmt.where(sessions.c.deleted_at.is_(None))
        if query:
            from cozy.storage.attach import fragments, message_fragments

            like = f"%{query}%"
            link = message_fragments.c
            # what the user wrote, or a fragment's label or text a message carried
            matching = sa.union(
                sa.select(messages.c.session_id).where(messages.c.content.ilike(like)),
                sa.select(messages.c.session_id)
                .join(message_fragments, link.message_id == messages.c.id)
                .join(fragments, fragments.c.hash == link.hash)
                .where(sa.or_(link.source.ilike(like), fragments.c.content.ilike(like))),
            )
            stmt = stmt.where(sa.or_(sessions.c.title.ilike(like), sessions.c.id.in_(matching)))
        stmt = stmt.order_by(sessions.c.updated_at.desc(), sessions.c.id.desc())
        rows = await self.read(stmt.limit(limit).offset(offset))
        return [session_of(r) for r in rows]

    async def update_session(self, session_id: str, user_id: str, **values: Any) -> None:
        allowed = {"title", "model", "personality_id", "metadata", "deleted_at"}
        bad = set(values) - allowed
        if bad:
            raise StorageError(f"cannot update session fields {sorted(bad)}")
        values["updated_at"] = utcnow()

        async def update(conn: AsyncConnection) -> int:
            res = await conn.execute(
                sa.update(sessions)
                .where(sessions.c.id == session_id, sessions.c.user_id == user_id)
                .values(**values)
            )
            return int(res.rowcount or 0)

        if await self.write(update) == 0:
            raise NotFoundError(
                f"no session '{session_id}'", hint="list sessions with `cozy sessions list`"
            )

    async def delete_session(self, session_id: str, user_id: str) -> None:
        await self.get_session(session_id, user_id=user_id)
        await self.update_session(session_id, user_id, deleted_at=utcnow())

    async def restore_session(self, session_id: str, user_id: str) -> None:
        await self.update_session(session_id, user_id, deleted_at=None)

    # --- messages ----------------------------------------------------------
    async def add_messages(
        self,
        session_id: str,
        items: Sequence[NewMessage],
        *,
        touch_title: str | None = None,
        also: Sequence[TxnStep] = (),
        create: SessionRow | None = None,
    ) -> list[str]:
        """Insert messages in one transaction and bump the session's updated_at.

        `also`: more writes (e.g. queueing a job) done in the same transaction;
        `create`: a `new_session_row` stored first, in the same transaction.
        """
        now = utcnow()
        rows = message_rows(session_id, items, now)
        links = [(r["id"], m.fragments) for r, m in zip(rows, items, strict=True) if m.fragments]

        async def insert(conn: AsyncConnection) -> None:
            if create is not None:  # stored already touched: no UPDATE below
                params = {**session_params(create), "updated_at": now}
                if touch_title and params["title"] is None:
                    params["title"] = touch_title[:300]
                await conn.execute(_INSERT_SESSION, params)
            if rows:
                await conn.execute(_INSERT_MESSAGES, rows)
                if links:  # each text kept once, the messages pointing at it
                    from cozy.storage import attach

                    await attach.insert(conn, links)
            for step in also:
                await step(conn)
            if create is not None:
                return
            touch = {"b_sid": session_id, "b_now": now}
            if touch_title:  # one statement: keep a title, set one on an untitled session
                await conn.execute(_TOUCH_TITLE, {**touch, "b_title": touch_title[:300]})
            else:
                await conn.execute(_TOUCH, touch)

        await self.write(insert)
        return [r["id"] for r in rows]

    async def add_message(self, session_id: str, message: NewMessage) -> str:
        return (await self.add_messages(session_id, [message]))[0]

    async def update_message(self, message_id: str, **values: Any) -> None:
        async def update(conn: AsyncConnection) -> None:
            await conn.execute(
                sa.update(messages).where(messages.c.id == message_id).values(**values)
            )

        await self.write(update)

    async def session_window(
        self, session_id: str, user_id: str, limit: int
    ) -> tuple[SessionRow, list[MessageRow]]:
        """A live session of this user and its last `limit` messages: one connection."""
        session_stmt = self._session_stmt(session_id, user_id)
        recent = self._recent_stmt(session_id, limit) if limit > 0 else None

        def both(conn: Any) -> tuple[Any, list[Any]]:
            found = conn.execute(session_stmt).first()
            rows = list(conn.execute(recent).fetchall()) if found and recent is not None else []
            return found, rows

        found, rows = await self.read_with(both)
        if found is None:  # an id prefix? (raises NotFoundError when it is not one)
            full = await self.session_id_for(session_id, user_id)
            return await self.session_window(full, user_id, limit)
        return session_of(found), await self.with_fragments([message_of(r) for r in reversed(rows)])

    @staticmethod
    def _recent_stmt(session_id: str, limit: int) -> Any:
        return (
            sa.select(messages)
            .where(messages.c.session_id == session_id)
            .order_by(messages.c.id.desc())
            .limit(limit)
        )

    async def recent_messages(self, session_id: str, limit: int) -> list[MessageRow]:
        """The last `limit` messages of a session, oldest first."""
        if limit <= 0:
            return []
        rows = await self.read(self._recent_stmt(session_id, limit))
        return await self.with_fragments([message_of(r) for r in reversed(rows)])

    async def list_messages(
        self, session_id: str, *, limit: int | None = None, offset: int = 0
    ) -> list[MessageRow]:
        stmt = (
            sa.select(messages)
            .where(messages.c.session_id == session_id)
            .order_by(messages.c.id)
            .offset(offset)
        )
        if limit is not None:
            stmt = stmt.limit(limit)
        return await self.with_fragments([message_of(r) for r in await self.read(stmt)])

    async def with_fragments(self, rows: list[MessageRow]) -> list[MessageRow]:
        """The messages with their attached fragments put back in front of what the user
        wrote, as the model saw them (one read, only when a message says it has some)."""
        ids = [r.id for r in rows if r.role == "user" and r.metadata.get("fragments")]
        if not ids:
            return rows
        from cozy.storage import attach

        found = await self.read_with(lambda conn: attach.read_links(conn, ids))
        for r in rows:
            items = found.get(r.id)
            if items:  # (a message stored before the links existed has its text inline)
                r.typed, r.fragments = r.content, items
                r.content = attach.assemble(items, r.content)
        return rows

    # --- audit -------------------------------------------------------------
    async def add_audit(self, kind: str, **values: Any) -> str:
        event_id = new_id("aud")

        async def insert(conn: AsyncConnection) -> None:
            await conn.execute(
                sa.insert(audit_events).values(
                    id=event_id, created_at=utcnow(), kind=kind, **values
                )
            )

        await self.write(insert)
        return event_id

    async def list_audit(
        self, *, user_id: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        stmt = sa.select(audit_events).order_by(audit_events.c.id.desc()).limit(limit)
        if user_id is not None:
            stmt = stmt.where(audit_events.c.user_id == user_id)
        return [dict(r._mapping) for r in await self.read(stmt)]
