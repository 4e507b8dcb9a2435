"""Toasts for background work while you chat: the app's job worker reports each job
it finishes, and the user sees memory/profile updates and failures (Pilot, the real
job queue and worker; the handlers are stand-ins under the real kinds)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.widgets._toast import Toast
from tui_helpers import make_app, ready, wait_for

from cozy.storage.jobs import Job
from cozy.testing import FakeModelServer
from cozy.tui.background import describe
from cozy.tui.widgets.prompt import PromptArea


async def test_finished_jobs_become_toasts_above_the_prompt(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    app = make_app(cozy_home, fake_model.url)
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await ready(app)
        rt = app.runtime
        ran: list[str] = []

        async def works(payload: dict[str, Any], job: Job) -> None:
            ran.append(job.kind)

        async def breaks(payload: dict[str, Any], job: Job) -> None:
            raise RuntimeError("the model went away")

        rt.worker.register("profile.update", works)
        rt.worker.register("memory.extract", breaks)
        rt.worker.register("session.summarize", works)
        await rt.jobs.enqueue("session.summarize", {})
        await rt.jobs.enqueue("profile.update", {})
        await rt.jobs.enqueue("memory.extract", {}, max_attempts=1)
        rt.worker.notify()
        shown = app.background.shown
        await wait_for(lambda: len(shown) == 2 and len(ran) == 2, 60)
        assert "profile updated from your last turn" in shown[0] or (
            "profile updated from your last turn" in shown[1]
        )
        failure = next(t for t in shown if "memory.extract" in t)
        assert "failed for good" in failure and "the model went away" in failure
        assert not any("summarize" in t for t in shown)  # summaries are silent
        await wait_for(lambda: len(app.screen.query(Toast)) >= 2)
        await pilot.pause()
        toasts = list(app.screen.query(Toast))
        prompt = app.query_one(PromptArea).region
        for toast in toasts:  # never over the prompt
            assert not toast.region.overlaps(prompt), (toast.region, prompt)


def test_describe_retry_and_silence() -> None:
    job = Job("j", "memory.extract", {}, "pending", 1, 5, 0.0, last_error="Timeout: slow\nmore")
    assert describe(job, "retry") == (
        "warning",
        "background memory.extract failed, will retry: Timeout: slow",
    )
    assert describe(job, "done") == (
        "information",
        "memory updated from your last turn (/memory shows it)",
    )
    quiet = Job("k", "knowledge.embed", {}, "pending", 1, 5, 0.0, last_error="x")
    assert describe(quiet, "retry") is None and describe(quiet, "done") is None
    assert describe(quiet, "failed") is not None  # for good: always said
