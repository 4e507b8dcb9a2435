"""Steering a conversation after the fact: regenerate the last answer, edit one of
your messages and send it again, take back the last exchange, and move between the
branches these make.

Regenerate and edit never change what was said: they branch (the runtime's
`branches.fork` copies the messages before the chosen one into a new session) and the
turn runs there; the original session stays whole and `/branches` (f7) opens either.
Undo deletes the last exchange and puts your message back in the prompt.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cozy.tui.host import TurnExtras, busy_warning
from cozy.tui.screens.picker import PickerScreen

if TYPE_CHECKING:
    from cozy.tui.host import Host


@dataclass(slots=True)
class Editing:
    message_id: str
    number: int
    draft: str  # what the prompt held before, given back on cancel
    fragments: list[Any] = field(default_factory=list)  # the message's files: sent again


class Branching:
    def __init__(self, host: Host) -> None:
        self.host = host
        self.editing: Editing | None = None

    # --- regenerate -------------------------------------------------------------
    async def regenerate(self) -> None:
        host, st = self.host, self.host.state
        if busy_warning(host):
            return
        if st.session_id is None:
            host.notify("nothing to regenerate yet", severity="warning")
            return
        rows = await host.runtime.store.recent_messages(st.session_id, 200)
        last = next((r for r in reversed(rows) if r.role == "user"), None)
        if last is None:
            host.notify("nothing to regenerate: no message of yours here", severity="warning")
            return
        await self._branch_and_send(last.id, last.own_text, "regenerating", last.fragments)

    # --- edit and resend ------------------------------------------------------------
    def start_edit(self, arg: str = "") -> None:
        host = self.host
        if busy_warning(host):
            return
        yours = host.views.chat.yours
        if not yours:
            host.notify("no message of yours to edit yet", severity="warning")
            return
        try:
            number = int(arg) if arg.strip() else max(yours)
        except ValueError:
            host.notify(f"/edit takes a message number (#1-#{max(yours)}), not '{arg}'")
            return
        view = yours.get(number)
        if view is None:
            host.notify(f"no message #{number}: yours are #1-#{max(yours)}", severity="warning")
            return
        if view.message_id is None:
            host.notify(f"message #{number} was not saved; send it again", severity="warning")
            return
        prompt = host.views.prompt
        self.editing = Editing(view.message_id, number, prompt.text, list(view.fragments))
        prompt.load_text(view.own_text)  # what you wrote; its files stay attached
        prompt.move_cursor(prompt.document.end)
        prompt.set_class(True, "-editing")
        banner = host.views.banner
        files = ", ".join(f.source for f in view.fragments)
        banner.update(
            f"editing #{number}{f' (with {files})' if files else ''}: enter sends it as a "
            "new branch (the original stays: /branches) · esc cancels"
        )
        banner.set_class(True, "-shown")
        prompt.focus()

    def cancel_edit(self) -> bool:
        """Esc while editing: the prompt gets its draft back; False when not editing."""
        if self.editing is None:
            return False
        draft = self.editing.draft
        self._end_edit()
        prompt = self.host.views.prompt
        prompt.load_text(draft)
        prompt.move_cursor(prompt.document.end)
        self.host.notify("edit cancelled")
        return True

    def _end_edit(self) -> None:
        self.editing = None
        views = self.host.views
        views.prompt.set_class(False, "-editing")
        views.banner.set_class(False, "-shown")

    async def resend(self, text: str) -> None:
        """The edited message, sent in a branch that leaves before the original."""
        editing = self.editing
        assert editing is not None
        self._end_edit()
        self.host.views.prompt.clear()
        await self._branch_and_send(
            editing.message_id, text, f"#{editing.number} edited", editing.fragments
        )

    async def _branch_and_send(
        self, before: str, text: str, what: str, fragments: list[Any] | None = None
    ) -> None:
        from cozy.core.errors import CozyError

        host, st = self.host, self.host.state
        assert st.session_id is not None
        try:
            fork = await host.runtime.branches.fork(
                st.session_id, host.settings.user, before=before
            )
        except CozyError as exc:
            host.notify(str(exc), severity="error")
            return
        await host.load_session(fork.id)
        # the same files again: linked to the stored texts, not stored a second time
        host.send(text, TurnExtras(fragments=tuple(fragments)) if fragments else None)
        host.refresh_sessions()
        host.notify(f"{what} in a new branch; the previous one is kept (/branches, f7)")

    # --- undo -------------------------------------------------------------------------
    async def undo(self) -> None:
        from cozy.core.errors import CozyError

        host, st = self.host, self.host.state
        if busy_warning(host):
            return
        if st.session_id is None:
            host.notify("nothing to undo", severity="warning")
            return
        try:
            gone = await host.runtime.branches.take_back_last_exchange(
                st.session_id, host.settings.user
            )
        except CozyError as exc:
            host.notify(str(exc), severity="warning")
            return
        await host.load_session(st.session_id)
        prompt = host.views.prompt
        if gone and not prompt.text.strip():
            prompt.load_text(gone[0].own_text)
            prompt.move_cursor(prompt.document.end)
            host.attach_again(gone[0].fragments)  # its files go with it next time
        host.refresh_sessions()
        host.notify(
            f"took back your last message and its answer ({len(gone)} messages); "
            "your message is in the prompt"
        )

    # --- moving between branches -------------------------------------------------------
    async def pick_branch(self) -> None:
        host, st = self.host, self.host.state
        if st.session_id is None:
            host.notify("no branches yet: this session is new", severity="warning")
            return
        branches = await host.runtime.branches.of_conversation(st.session_id, host.settings.user)
        choices = []
        for i, b in enumerate(branches, 1):
            when = time.strftime("%m-%d %H:%M", time.localtime(b.session.created_at))
            origin = "first" if b.of is None else f"from {b.of[-8:]}"
            label = (
                f"{i}. {b.session.title or 'untitled'} · {b.message_count} msgs · {when} · {origin}"
            )
            choices.append((b.session.id, label))

        async def done(value: str | None) -> None:
            if value and value != host.state.session_id:
                if busy_warning(host):
                    return
                await host.load_session(value)
                host.refresh_sessions()

        host.push_screen(
            PickerScreen(f"Branches ({len(choices)})", choices, current=st.session_id),
            callback=done,
        )
