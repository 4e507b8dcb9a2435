"""`/knowledge add` in the chat: a durable ingest job the app's worker runs, with notices."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tui_helpers import make_app, ready, send, wait_for

from cozy.testing import FakeModelServer
from cozy.tui.ingest import USAGE, IngestRequest, parse_ingest

LOCAL_KNOWLEDGE = "knowledge: {provider: local, embed: false}\n"


def test_parse_ingest() -> None:
    assert parse_ingest("add ~/notes 'my file.md' -c work") == IngestRequest(
        ["~/notes", "my file.md"], "work"
    )
    assert parse_ingest("add a.md") == IngestRequest(["a.md"], "default")
    assert parse_ingest("search keys") == USAGE
    assert "no path given" in str(parse_ingest("add -c work"))
    assert "needs a collection name" in str(parse_ingest("add a.md -c"))
    assert "quotation" in str(parse_ingest("add 'unclosed"))


def recorder(app: Any) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    original = app.notify

    def notify(message: str, *args: Any, severity: str = "information", **kw: Any) -> None:
        seen.append((severity, str(message)))
        original(message, *args, severity=severity, **kw)

    app.notify = notify
    return seen


async def test_knowledge_add_runs_as_a_job_and_reports(
    cozy_home: Path, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "keys.md").write_text("# Security\n\n## Key rotation\n\nRotate API keys monthly.\n")
    (notes / "boiler.md").write_text("# Home\n\nBleed the radiators every autumn.\n")
    app = make_app(cozy_home, fake_model.url, LOCAL_KNOWLEDGE)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app)
        seen = recorder(app)
        await send(pilot, f"/knowledge add {notes} -c work")
        assert any("in the background" in m for _, m in seen), seen
        await wait_for(lambda: any(m.startswith("knowledge 'work'") for _, m in seen), 60)
        done = next(m for _, m in seen if m.startswith("knowledge 'work'"))
        assert "2 " in done, done  # two files indexed
        engine = app.runtime.engines["knowledge"]
        hits = await engine.search_knowledge("rotate API keys", user_id=app.settings.user)
        assert hits and str(hits[0].metadata["path"]).endswith("keys.md")
        jobs = await app.runtime.jobs.list(status="done")
        assert [j.kind for j in jobs if j.kind == "knowledge.ingest"] == ["knowledge.ingest"]
        # bad input: a clear message, nothing queued
        await send(pilot, f"/knowledge add {tmp_path / 'missing'}")
        assert any(s == "error" and "no such file" in m for s, m in seen), seen
        await send(pilot, "/knowledge add")
        assert any(s == "warning" and "no path given" in m for s, m in seen), seen
        assert len(await app.runtime.jobs.list()) == len(jobs)
