"""AppBase: the state and hooks the app's parts share (for the type checker and readers).

CozyApp (app.py) sets these in __init__ and defines the hooks; TurnMixin (turn.py)
and ActionsMixin (actions.py) build on this base so each module stays small.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from textual.app import App

if TYPE_CHECKING:
    from cozy.runtime import Runtime
    from cozy.settings import Settings


class AppBase(App[int]):
    settings: Settings
    ready: asyncio.Event
    session_id: str | None
    personality: str
    model: str | None
    busy: bool
    tokens: int
    last_error: str | None
    deleted: list[str]
    copied: str | None
    recorder: Any
    voice_problem: str | None

    @property
    def runtime(self) -> Runtime:
        raise NotImplementedError

    def refresh_sessions(self, query: str | None = None) -> Any:
        raise NotImplementedError

    def run_turn(self, text: str) -> Any:
        raise NotImplementedError

    async def delete_session(self, session_id: str) -> None:
        raise NotImplementedError
