"""Memory / profile / knowledge browsers over the engines' own methods.

The interfaces in engines/base.py give search (memory, knowledge) and
get_profile. When the engine also offers the capability protocols `ManagesMemories`
/ `ManagesProfileSlots` (memory.local, memory.mem0, profile.local do), the browser
lists items and lets the user edit, forget and restore them; otherwise it says that
those actions are not available for this provider.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from textual import work
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, ListItem, ListView, Static

from cozy.tui.screens.picker import TextInputScreen

if TYPE_CHECKING:
    from textual.app import ComposeResult

TITLES = {"memory": "Memories", "profile": "Profile", "knowledge": "Knowledge"}


@dataclass(slots=True)
class Entry:
    key: str  # memory id or topic.slot
    text: str
    removed: bool = False


class _Row(ListItem):
    def __init__(self, entry: Entry) -> None:
        mark = "✗ " if entry.removed else "• "
        super().__init__(Label(mark + entry.text, markup=False))
        self.entry = entry
        self.set_class(entry.removed, "-removed")


class BrowserScreen(ModalScreen[None]):
    BINDINGS = [  # noqa: RUF012 - Textual's convention
        Binding("escape", "close", "Close"),
        Binding("e", "edit", "Edit"),
        Binding("f,delete", "forget", "Forget"),
        Binding("r", "restore", "Restore"),
    ]

    def __init__(self, kind: str, engine: Any, user_id: str, reason: str = "") -> None:
        super().__init__()
        self.kind, self.engine, self.user_id, self.reason = kind, engine, user_id, reason
        self.entries: list[Entry] = []

    @property
    def manageable(self) -> bool:
        from cozy.engines.capabilities import ManagesMemories, ManagesProfileSlots

        if self.kind == "memory":
            return isinstance(self.engine, ManagesMemories)
        return self.kind == "profile" and isinstance(self.engine, ManagesProfileSlots)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog browser"):
            yield Static(TITLES.get(self.kind, self.kind), classes="title")
            if self.engine is not None:
                yield Input(placeholder=f"filter / search {self.kind} (enter)", id="browser-query")
                yield ListView(id="browser-list")
            yield Static(self.reason or "loading…", id="browser-body", markup=False)
            hint = (
                "e edit · f forget · r restore · esc close"
                if self.manageable
                else "edit / forget / restore: not available for this provider · esc close"
            )
            yield Static(hint, classes="note")

    def on_mount(self) -> None:
        if self.engine is not None:
            self.load("")
            self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.load(event.value)
        self.query_one(ListView).focus()

    @work(exclusive=True)
    async def load(self, query: str) -> None:
        body = self.query_one("#browser-body", Static)
        try:
            self.entries, message = await self._fetch(query)
        except Exception as exc:  # an engine failure is shown, never crashes the app
            self.entries, message = (
                [],
                f"the {self.kind} engine failed: {type(exc).__name__}: {exc}",
            )
        view = self.query_one(ListView)
        await view.clear()
        if self.entries:
            await view.extend(_Row(e) for e in self.entries)
            view.index = 0
        body.update(message)

    async def _fetch(self, query: str) -> tuple[list[Entry], str]:
        engine, q = self.engine, query.strip().lower()
        if self.kind == "memory" and self.manageable:
            rows = await engine.list_memories(self.user_id, include_removed=True)
            entries = [Entry(r.id, r.text, r.status != "active") for r in rows]
            entries = [e for e in entries if q in e.text.lower()]
            return entries, f"{len(entries)} memories" if entries else "no memories yet"
        if self.kind == "profile" and self.manageable:
            rows = await engine.slots(self.user_id, include_removed=True)
            entries = [
                Entry(
                    f"{r['topic']}.{r['slot']}",
                    f"{r['topic']}.{r['slot']}: {r['value']}",
                    r.get("deleted_at") is not None,
                )
                for r in rows
            ]
            entries = [e for e in entries if q in e.text.lower()]
            return entries, f"{len(entries)} profile slots" if entries else "no profile yet"
        if self.kind == "profile":
            profile = await engine.get_profile(self.user_id)
            slots = [
                Entry(f"{s.topic}.{s.slot}", f"{s.topic}.{s.slot}: {s.value}")
                for s in profile.slots
            ]
            return slots, profile.summary or "no profile yet"
        if not q:
            return [], f"type a query and press enter to search {self.kind}"
        if self.kind == "memory":
            hits = await engine.search_memories(query, user_id=self.user_id, limit=20)
            return [Entry(h.id, f"{h.text} ({h.score:.2f})") for h in hits], f"{len(hits)} hits"
        hits = await engine.search_knowledge(query, user_id=self.user_id, limit=20)
        return [
            Entry(h.id, f"[{i}] {h.citation or h.id} ({h.score:.2f})\n{h.text[:300]}")
            for i, h in enumerate(hits, 1)
        ], f"{len(hits)} hits"

    def _selected(self) -> Entry | None:
        if not self.manageable:
            self.notify("not available for this provider", severity="warning")
            return None
        item = self.query_one(ListView).highlighted_child
        return item.entry if isinstance(item, _Row) else None

    def action_edit(self) -> None:
        entry = self._selected()
        if entry is None:
            return
        current = entry.text.split(": ", 1)[-1] if self.kind == "profile" else entry.text

        async def done(value: str | None) -> None:
            if value:
                await self._apply("edit", entry, value)

        self.app.push_screen(TextInputScreen(f"Edit {entry.key}", current), callback=done)

    async def action_forget(self) -> None:
        entry = self._selected()
        if entry is not None and not entry.removed:
            await self._apply("forget", entry)

    async def action_restore(self) -> None:
        entry = self._selected()
        if entry is not None and entry.removed:
            await self._apply("restore", entry)

    async def _apply(self, what: str, entry: Entry, value: str = "") -> None:
        engine, user = self.engine, self.user_id
        try:
            if self.kind == "memory":
                if what == "edit":
                    await engine.edit_memory(user, entry.key, value)
                elif what == "forget":
                    await engine.forget(user, entry.key)
                else:
                    await engine.restore(user, entry.key)
            elif what == "forget":
                await engine.remove_slot(user, entry.key)
            else:
                old = entry.text.split(": ", 1)[-1]
                await engine.set_slot(user, entry.key, value or old)
        except Exception as exc:  # show the engine's message (they name the fix)
            self.notify(f"{what} failed: {exc}", severity="error")
            return
        self.notify(f"{what}: {entry.key}")
        self.load(self.query_one(Input).value)

    def action_close(self) -> None:
        self.dismiss(None)
