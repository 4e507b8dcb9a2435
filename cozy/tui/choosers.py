"""Choosing the personality and the model of the conversation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cozy.tui.screens.picker import PickerScreen

if TYPE_CHECKING:
    from cozy.tui.host import Host


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
        host.notify(f"personality: {personality.name}")

    def set_model(self, spec: str) -> None:
        host = self.host
        host.state.model = spec
        host.views.status.set(model=spec)
        host.notify(f"model: {spec}")

    async def _model_choices(self) -> tuple[list[tuple[str, str]], str]:
        host = self.host
        rt = host.runtime
        try:
            provider = rt.router.split(host.state.model)[0]
            models = await rt.list_models(provider)
        except Exception as exc:  # a down provider still lets the user type a model
            return [], f"could not list models: {exc}; type provider:model and press enter"
        return [(f"{m.provider}:{m.id}", f"{m.provider}:{m.id}") for m in models], (
            "or type provider:model and press enter"
        )

    def pick_model(self) -> None:
        async def run() -> None:
            choices, note = await self._model_choices()

            def done(value: str | None) -> None:
                if value:
                    self.set_model(value)

            self.host.push_screen(
                PickerScreen(
                    "Model", choices, current=self.host.state.model, free_text=True, note=note
                ),
                callback=done,
            )

        self.host.run_worker(run(), group="picker", exclusive=True)
