"""What the chat's parts share: the state of the conversation, the widgets, and the
few app calls they make.

`CozyApp` (app.py) composes its parts (turns, sessions, pickers, copy, voice…);
each part receives the app as a `Host`, a protocol, so no part imports the app and
each can be read (and tested) on its own.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from textual.notifications import SeverityLevel
    from textual.widgets import Static
    from textual.worker import Worker

    from cozy.core.inputs import Fragment
    from cozy.core.types import GenerationOptions, ImagePart
    from cozy.runtime import Runtime
    from cozy.settings import Settings
    from cozy.tui.widgets.context_panel import ContextPanel
    from cozy.tui.widgets.messages import ChatLog
    from cozy.tui.widgets.prompt import PromptArea
    from cozy.tui.widgets.sidebar import Sidebar
    from cozy.tui.widgets.status import StatusBar


@dataclass
class ChatState:
    """The conversation the app shows: which session, personality and model, and
    what happened last (read by the parts and by tests)."""

    personality: str
    model: str | None
    session_id: str | None = None
    busy: bool = False
    tokens: int = 0
    last_error: str | None = None
    model_problem: str | None = None
    startup_error: str | None = None
    voice_problem: str | None = None
    copied: str | None = None
    deleted: list[str] = field(default_factory=list)
    ready: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True, slots=True)
class TurnExtras:
    """What a turn may carry besides its prompt (a template's system prompt, options,
    model or personality for that turn only; attached files and images)."""

    system: str | None = None
    options: GenerationOptions | None = None
    model: str | None = None
    personality: str | None = None
    fragments: tuple[Fragment, ...] = ()  # files sent in front of the text (/file, @path)
    images: tuple[ImagePart, ...] = ()


@dataclass(frozen=True, slots=True)
class Views:
    """The app's long-lived widgets, found once after they are mounted."""

    chat: ChatLog
    prompt: PromptArea
    status: StatusBar
    sidebar: Sidebar
    context: ContextPanel
    banner: Static  # above the prompt: what Enter will do when it is not "send"


class Host(Protocol):
    """The app as its parts see it."""

    settings: Settings
    state: ChatState

    @property
    def runtime(self) -> Runtime: ...

    @property
    def views(self) -> Views: ...

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None: ...

    def push_screen(self, screen: Any, callback: Any = None) -> Any: ...

    def run_worker(
        self,
        work: Any,
        name: str | None = "",
        group: str = "default",
        description: str = "",
        exit_on_error: bool = True,
        start: bool = True,
        exclusive: bool = False,
        thread: bool = False,
    ) -> Worker[Any]: ...

    def copy_to_clipboard(self, text: str) -> None: ...

    def exit(self, result: Any = None, return_code: int = 0, message: Any = None) -> None: ...

    def send(self, text: str, extras: TurnExtras | None = None) -> None:
        """Run `text` as the next turn (the turn part does it)."""
        ...

    def refresh_sessions(self, query: str | None = None) -> None: ...

    def attach_again(self, fragments: list[Any]) -> None:
        """Attach these files to the next message (a taken-back message's)."""
        ...

    async def show_personalities(self) -> None:
        """Mark the current personality in the sidebar."""
        ...

    async def load_session(self, session_id: str) -> None:
        """Show a stored session and make it current."""
        ...


def busy_warning(host: Host) -> bool:
    """True (and a toast saying how to stop it) while an answer is running."""
    if host.state.busy:
        host.notify("an answer is running; esc cancels it", severity="warning")
        return True
    return False
