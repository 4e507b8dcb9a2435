"""Push-to-talk for the TUI, through the voice engine (cozy/engines/voice).

Terminals report key presses but not releases, so "hold to talk" becomes a
toggle: the push-to-talk key starts recording, the same key stops it; the
transcript is sent as the next prompt. When no voice engine, no recogniser or no
microphone is there, the user gets a notice that says why and how to fix it.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cozy.runtime import Runtime
    from cozy.tui.host import Host

VOICE_OFF = (
    "Voice is unavailable: no voice engine is configured. Set `voice: {provider: local}` in "
    "engines.yaml and install the voice extra (`./install.sh --extras voice`); "
    "`cozy doctor` shows what is missing."
)


async def voice_engine(runtime: Runtime) -> tuple[Any | None, str | None]:
    """The voice engine ready to record, or None and the reason it is unavailable."""
    from cozy.core.errors import CozyError

    try:
        engine = await runtime.engine("voice")
    except CozyError as exc:
        return None, f"Voice is unavailable: {exc}"
    except Exception as exc:  # a broken optional dependency must not crash the app
        return None, f"Voice is unavailable: {type(exc).__name__}: {exc}"
    if engine is None:
        return None, VOICE_OFF
    health = await engine.health_check()
    if not health.ok:
        fix = f" — {health.fix}" if health.fix else ""
        return None, f"Voice is unavailable: {health.detail}{fix}"
    try:
        from cozy.engines.voice.devices import pick_device

        await asyncio.to_thread(pick_device, None, kind="input")
    except CozyError as exc:
        return None, f"Voice is unavailable: {exc}"
    except Exception as exc:
        return None, f"Voice is unavailable: no usable microphone ({type(exc).__name__}: {exc})"
    return engine, None


class Recorder:
    """Collects microphone audio until stopped, then transcribes it."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.chunks: list[Any] = []
        self.task: asyncio.Task[None] | None = None
        self.error: BaseException | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._record())

    async def _record(self) -> None:
        from cozy.engines.voice.io import mic_source

        try:
            async for chunk in mic_source():
                self.chunks.append(chunk)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.error = exc

    async def stop(self) -> str:
        import numpy as np

        from cozy.engines.voice.audio import STT_RATE, Clip

        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        if self.error is not None:
            raise self.error
        if not self.chunks:
            return ""
        samples = np.concatenate(self.chunks).astype(np.float32)
        text: str = await self.engine.transcribe_clip(Clip(samples, STT_RATE))
        return text.strip()


class PushToTalk:
    """The push-to-talk key: the first press records, the second sends the transcript."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.recorder: Recorder | None = None

    async def toggle(self) -> None:
        host = self.host
        status = host.views.status
        if self.recorder is not None:
            recorder, self.recorder = self.recorder, None
            status.set(recording=False)
            try:
                text = await recorder.stop()
            except Exception as exc:  # device vanished, recogniser failed
                host.notify(f"voice: {exc}", severity="error", timeout=10)
                return
            if not text:
                host.notify("voice: heard nothing", severity="warning")
                return
            host.send(text)
            return
        engine, problem = await voice_engine(host.runtime)
        if problem is not None:
            host.state.voice_problem = problem
            host.notify(problem, severity="warning", timeout=12)
            return
        self.recorder = Recorder(engine)
        self.recorder.start()
        status.set(recording=True)
