"""The app's runtime from start to close: opening it (or taking the one given), the
first screen, the early word when no model answers, and closing what it opened."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from cozy.tui.heap import release_full_gc, settle_heap
from cozy.tui.widgets.mdbody import warm_up

if TYPE_CHECKING:
    from cozy.runtime import Runtime
    from cozy.tui.background import BackgroundToasts
    from cozy.tui.host import Host
    from cozy.tui.sessions import Sessions

MODEL_CHECK_TIMEOUT = 5.0


class Startup:
    def __init__(
        self, host: Host, sessions: Sessions, toasts: BackgroundToasts, given: Runtime | None
    ) -> None:
        self.host = host
        self.sessions = sessions
        self.toasts = toasts
        self.given = given  # a given runtime outlives the app: it is not closed here
        self.runtime = given

    async def open(self, session: str | None) -> bool:
        """Open the runtime and show the first session; False: the app exits with the error."""
        from cozy.core.errors import CozyError
        from cozy.runtime import Runtime

        host, st = self.host, self.host.state
        try:
            if self.runtime is None:
                self.runtime = await Runtime.open(host.settings)
            rt = self.runtime
            rt.worker.listeners.append(self.toasts.listen)  # toasts for finished jobs
            rt.start_worker()  # memory, profile, summaries: background jobs run while you chat
            try:
                st.personality = rt.personalities.get(st.personality).id
            except CozyError as exc:
                await host.views.chat.add_notice(f"⚠ {exc}", "error")
                st.personality = rt.personalities.get(host.settings.personality).id
            await self.sessions.open_start(session)
        except CozyError as exc:
            st.startup_error = str(exc)
            host.exit(return_code=exc.exit_code, message=f"error: {exc}")
            return False
        warm_up()  # the Markdown renderer's imports happen now, not during the first answer
        settle_heap()  # full collections stop walking start-up's objects (see heap.py)
        st.ready.set()
        host.views.status.set(personality=st.personality)
        await host.show_personalities()
        host.refresh_sessions()
        return True

    async def probe_model(self) -> None:
        """Say early (and how to fix it) when no model is reachable; browsing still works."""
        from cozy.core.errors import CozyError
        from cozy.tui.turn import auto_reason

        rt, st = self.host.runtime, self.host.state
        try:
            route = await rt.router.resolve(st.model)
            await asyncio.wait_for(route.engine.list_models(), MODEL_CHECK_TIMEOUT)
        except (CozyError, OSError, TimeoutError) as exc:
            st.model_problem = str(exc)
        except Exception as exc:  # any provider failure: report it, never crash
            st.model_problem = f"{type(exc).__name__}: {exc}"
        else:
            self.host.views.status.set(model=route.label, why=auto_reason(route.reason))
            return
        await self.host.views.chat.add_notice(
            f"⚠ No model reachable: {st.model_problem}\n"
            "Fix: start Ollama (`ollama serve`, then `ollama pull llama3.2`), or set "
            "OPENAI_BASE_URL / OPENAI_API_KEY, or pick another model with /model. "
            "`cozy doctor` checks the setup. You can still browse your sessions.",
            "error",
        )

    async def close(self) -> None:
        release_full_gc(collect=False)  # the threshold goes back as the app closes
        if self.runtime is None:
            return
        with contextlib.suppress(ValueError):  # a given runtime outlives this app
            self.runtime.worker.listeners.remove(self.toasts.listen)
        if self.given is None:
            await self.runtime.close()
