"""Sessions in the chat: open, list, start new, rename, delete and restore, export."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from cozy.tui.history import render_history
from cozy.tui.host import busy_warning
from cozy.tui.screens.picker import TextInputScreen

if TYPE_CHECKING:
    from cozy.tui.host import Host


class Sessions:
    def __init__(self, host: Host) -> None:
        self.host = host

    async def open_start(self, ref: str | None) -> None:
        """The session `cozy chat -s REF` asked for ("last", an id or a prefix)."""
        from cozy.core.errors import CozyError

        if not ref or ref == "new":
            return
        host = self.host
        store, user = host.runtime.store, host.settings.user
        chat = host.views.chat
        try:
            row = (
                await store.last_session(user)
                if ref == "last"
                else await store.get_session(ref, user_id=user)
            )
        except CozyError as exc:
            await chat.add_notice(f"⚠ {exc}; starting a new session", "error")
            return
        if row is None:
            await chat.add_notice("no sessions yet; starting a new one", "info")
            return
        await self.load(row.id)

    async def load(self, session_id: str) -> None:
        """Show a stored session (the last 200 messages) and make it current."""
        host, st = self.host, self.host.state
        rt = host.runtime
        row = await rt.store.get_session(session_id, user_id=host.settings.user)
        chat = host.views.chat
        await chat.reset()
        st.session_id = row.id
        st.personality = row.personality_id
        if row.model:
            st.model = row.model
        await render_history(chat, rt.store, row.id)
        host.views.status.set(personality=st.personality, model=st.model or "default")
        await host.show_personalities()

    def refresh(self, query: str | None = None) -> None:
        self.host.run_worker(
            self._refresh(query), group="sessions", exclusive=True, exit_on_error=False
        )

    async def _refresh(self, query: str | None) -> None:
        host = self.host
        await host.state.ready.wait()
        sidebar = host.views.sidebar
        if query is None:
            query = sidebar.query_text
        rows = await host.runtime.store.list_sessions(
            host.settings.user, query=query or None, limit=200
        )
        await sidebar.show(rows, host.state.session_id)

    async def open(self, session_id: str) -> None:
        if busy_warning(self.host):
            return
        await self.load(session_id)
        self.host.views.prompt.focus()

    async def new(self) -> None:
        host = self.host
        if busy_warning(host):
            return
        host.state.session_id = None
        views = host.views
        await views.chat.reset()
        views.context.show(None)
        views.status.set(degraded=False)
        self.refresh()
        host.notify("new session: it is saved with your first message")

    async def ask_rename(self) -> None:
        host = self.host
        if host.state.session_id is None:
            host.notify("nothing to rename yet: send a message first", severity="warning")
            return
        row = await host.runtime.store.get_session(
            host.state.session_id, user_id=host.settings.user
        )

        async def done(title: str | None) -> None:
            if title:
                await self.rename_to(title)

        host.push_screen(TextInputScreen("Rename session", row.title or ""), callback=done)

    async def rename_to(self, title: str) -> None:
        host = self.host
        if host.state.session_id is None:
            host.notify("nothing to rename yet: send a message first", severity="warning")
            return
        await host.runtime.store.update_session(
            host.state.session_id, host.settings.user, title=title
        )
        self.refresh()
        host.notify(f"renamed to '{title}'")

    async def delete(self, session_id: str) -> None:
        host, st = self.host, self.host.state
        await host.runtime.store.delete_session(session_id, host.settings.user)
        st.deleted.append(session_id)
        if session_id == st.session_id:
            st.session_id = None
            await host.views.chat.reset()
        self.refresh()
        host.notify(
            "session deleted · ctrl+z (in the sidebar) or /restore brings it back", timeout=8
        )

    async def restore(self) -> None:
        host, st = self.host, self.host.state
        if not st.deleted:
            host.notify("no deleted session to restore")
            return
        session_id = st.deleted.pop()
        await host.runtime.store.restore_session(session_id, host.settings.user)
        self.refresh()
        host.notify("session restored")

    async def export(self, target: str) -> None:
        host = self.host
        if host.state.session_id is None:
            host.notify("nothing to export yet", severity="warning")
            return
        store = host.runtime.store
        row = await store.get_session(host.state.session_id, user_id=host.settings.user)
        msgs = await store.list_messages(row.id)
        lines = [f"# {row.title or row.id}", "", f"- session: `{row.id}`", ""]
        for m in msgs:
            label = {"user": "You", "assistant": "Assistant"}.get(m.role, m.role.title())
            flag = f" ({m.status})" if m.status != "complete" else ""
            lines += [f"## {label}{flag}", "", m.content, ""]
        path = Path(target or f"cozy-{row.id}.md")
        try:
            path = await asyncio.to_thread(_write, path, "\n".join(lines))
        except OSError as exc:
            host.notify(f"could not write {path}: {exc}", severity="error")
            return
        host.notify(f"exported to {path}")


def _write(path: Path, text: str) -> Path:
    path = path.expanduser().resolve()
    path.write_text(text, encoding="utf-8")
    return path
