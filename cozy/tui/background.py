"""Toasts for work done in the background while you chat: memory and profile updated
from a turn, a job that failed (and whether it will be retried).

The app's job worker tells its listeners about every job it finishes; this part
turns the ones a user cares about into toasts. Knowledge ingestion has its own,
more detailed toasts (ingest.py); summaries and embeddings are silent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cozy.storage.jobs import Job
    from cozy.tui.host import Host

DONE_MESSAGES = {
    "memory.extract": "memory updated from your last turn (/memory shows it)",
    "mem0.add": "memory updated from your last turn (/memory shows it)",
    "profile.update": "profile updated from your last turn (/profile shows it)",
}
SILENT = frozenset({"session.summarize", "knowledge.embed", "memory.turns"})


def describe(job: Job, outcome: str) -> tuple[str, str] | None:
    """(severity, message) for a finished job, or None when it is not worth a toast."""
    if outcome == "done":
        text = DONE_MESSAGES.get(job.kind)
        return ("information", text) if text else None
    if job.kind in SILENT and outcome == "retry":
        return None
    error = (job.last_error or "").splitlines()[0][:160] if job.last_error else "no detail"
    if outcome == "retry":
        return "warning", f"background {job.kind} failed, will retry: {error}"
    return "error", f"background {job.kind} failed for good: {error} (`cozy jobs list` shows it)"


class BackgroundToasts:
    def __init__(self, host: Host) -> None:
        self.host = host
        self.shown: list[str] = []  # what was toasted (read by tests)

    def listen(self, job: Job, outcome: str) -> None:
        said = describe(job, outcome)
        if said is None:
            return
        severity, text = said
        self.shown.append(text)
        if severity == "error":
            self.host.notify(text, severity="error", timeout=12)
        elif severity == "warning":
            self.host.notify(text, severity="warning", timeout=12)
        else:
            self.host.notify(text, timeout=8)
