"""Choosing the personality and the model of the conversation."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from cozy.tui.screens.picker import PickerScreen

if TYPE_CHECKING:
    from cozy.core.types import ModelInfo
    from cozy.tui.host import Host


LIST_TIMEOUT_S = 5.0


class Choosers:
    def __init__(self, host: Host) -> None:
        self.host = host

    def pick_personality(self) -> None:
        host = self.host
        items = host.runtime.personalities.all()
        choices = [(p.id, f"{p.name} — {p.description}") for p in items.values()]

        async def done(value: str | None) -> None:
            if value:
                await self.choose_personality(value)

        host.push_screen(
            PickerScreen("Personality", choices, current=host.state.personality), callback=done
        )

    async def choose_personality(self, pid: str) -> None:
        from cozy.core.errors import CozyError

        host, st = self.host, self.host.state
        try:
            personality = host.runtime.personalities.get(pid)
        except CozyError as exc:
            host.notify(str(exc), severity="error")
            return
        st.personality = personality.id
        if st.session_id is not None:
            await host.runtime.store.update_session(
                st.session_id, host.settings.user, personality_id=personality.id
            )
        host.views.status.set(personality=personality.id)
        await self.show_personalities()
        host.notify(f"personality: {personality.name}")

    async def show_personalities(self) -> None:
        """The sidebar's list, with the current one marked."""
        host = self.host
        items = [(p.id, p.name) for p in host.runtime.personalities.all().values()]
        await host.views.sidebar.show_personalities(items, host.state.personality)

    async def set_model(self, spec: str) -> None:
        """Use `spec` from the next turn on, and keep it on the session (reopening the
        session, here or with `cozy chat -s`, answers with the same model)."""
        host, st = self.host, self.host.state
        st.model = spec
        if st.session_id is not None:
            await host.runtime.store.update_session(st.session_id, host.settings.user, model=spec)
        host.views.status.set(model=spec, why="")
        host.notify(f"model: {spec}" + (" (kept with this session)" if st.session_id else ""))

    async def _model_choices(self) -> tuple[list[tuple[str, str]], str]:
        """Every configured provider's models, asked in parallel; a provider that is
        down or slow is named in the note instead of hiding the others."""
        rt = self.host.runtime
        providers = rt.models.providers()

        async def one(provider: str) -> list[ModelInfo]:
            return await asyncio.wait_for(rt.models.available(provider), LIST_TIMEOUT_S)

        results = await asyncio.gather(*(one(p) for p in providers), return_exceptions=True)
        choices: list[tuple[str, str]] = []
        problems: list[str] = []
        for provider, result in zip(providers, results, strict=True):
            if isinstance(result, BaseException):
                why = str(result) or type(result).__name__
                problems.append(f"{provider}: {why.splitlines()[0][:80]}")
                continue
            for m in result:
                value = f"{m.provider}:{m.id}"
                if all(value != v for v, _ in choices):
                    choices.append((value, value))
        note = "or type provider:model and press enter"
        if problems:
            note = "not listed: " + "; ".join(problems) + f"\n{note}"
        return choices, note

    def pick_model(self) -> None:
        async def run() -> None:
            choices, note = await self._model_choices()

            async def done(value: str | None) -> None:
                if value:
                    await self.set_model(value)

            self.host.push_screen(
                PickerScreen(
                    "Model", choices, current=self.host.state.model, free_text=True, note=note
                ),
                callback=done,
            )

        self.host.run_worker(run(), group="picker", exclusive=True)
