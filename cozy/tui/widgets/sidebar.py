"""The sidebar: sessions (search by title and content, open, delete) and, below them,
the personalities (pick one for this conversation)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, Label, ListItem, ListView

if TYPE_CHECKING:
    from textual.app import ComposeResult

    from cozy.storage.store import SessionRow


def when(ts: float) -> str:
    return time.strftime("%m-%d %H:%M", time.localtime(ts))


def session_label(s: SessionRow) -> str:
    title = (s.title or "untitled").replace("\n", " ")
    mark = "⎇ " if (s.metadata or {}).get("branch") else ""
    return f"{mark}{title[:40]}\n{when(s.updated_at)} · {s.personality_id}"


class SessionItem(ListItem):
    def __init__(self, row: SessionRow) -> None:
        super().__init__(Label(session_label(row), markup=False))
        self.row = row


class PersonalityItem(ListItem):
    def __init__(self, pid: str, name: str, current: bool) -> None:
        super().__init__(Label(f"{'● ' if current else '  '}{name}", markup=False))
        self.pid = pid


class Sidebar(Vertical):
    BINDINGS = [  # noqa: RUF012 - Textual's convention
        Binding("delete", "delete_session", "Delete session", id="sidebar.delete"),
        Binding("ctrl+z", "app.undo_delete", "Undo delete", id="sidebar.undo"),
    ]

    class Search(Message):
        def __init__(self, query: str) -> None:
            super().__init__()
            self.query = query

    class Open(Message):
        def __init__(self, session_id: str) -> None:
            super().__init__()
            self.session_id = session_id

    class Delete(Message):
        def __init__(self, session_id: str) -> None:
            super().__init__()
            self.session_id = session_id

    class Personality(Message):
        def __init__(self, personality_id: str) -> None:
            super().__init__()
            self.personality_id = personality_id

    def __init__(self) -> None:
        super().__init__(id="sidebar")
        self.border_title = "Sessions"

    def compose(self) -> ComposeResult:
        yield Input(placeholder="search sessions", id="session-search")
        yield ListView(id="session-list")
        yield Label("Personalities", id="personalities-title")
        yield ListView(id="personality-list")

    async def show_personalities(self, items: list[tuple[str, str]], current: str) -> None:
        view = self.query_one("#personality-list", ListView)
        await view.clear()
        await view.extend([PersonalityItem(pid, name, pid == current) for pid, name in items])

    async def show(self, rows: list[SessionRow], current: str | None) -> None:
        view = self.query_one("#session-list", ListView)
        await view.clear()
        items = [SessionItem(r) for r in rows]
        if items:
            await view.extend(items)
        for i, item in enumerate(items):
            if item.row.id == current:
                view.index = i
                break

    @property
    def query_text(self) -> str:
        """What the search box holds."""
        return self.query_one("#session-search", Input).value

    @property
    def ids(self) -> list[str]:
        return [item.row.id for item in self.query(SessionItem)]

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(self.Search(event.value))

    def on_list_view_selected(self, event: ListView.Selected) -> None:
        event.stop()
        if isinstance(event.item, SessionItem):
            self.post_message(self.Open(event.item.row.id))
        elif isinstance(event.item, PersonalityItem):
            self.post_message(self.Personality(event.item.pid))

    def highlighted(self) -> SessionItem | None:
        item = self.query_one("#session-list", ListView).highlighted_child
        return item if isinstance(item, SessionItem) else None

    def action_delete_session(self) -> None:
        item = self.highlighted()
        if item is not None:
            self.post_message(self.Delete(item.row.id))
