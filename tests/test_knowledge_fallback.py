"""A dead or hung embedder: knowledge answers from keywords, and says so ("keywords
only"), in the engine's results and in the context of a turn."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import collect, open_runtime, req

from cozy.core.events import ContextBuilt
from cozy.engines.degraded import noting
from cozy.testing import FakeModelServer

EMBED = (
    "embed: {{provider: openai, base_url: '{url}/v1', model: fake-embed, api_key: k, "
    "max_retries: 0}}\nknowledge: {{provider: local, embed: true, embed_wait: 5}}\n"
    "memory: {{provider: none}}\nprofile: {{provider: none}}\n"
)


@pytest.mark.parametrize("fault", ["errors", "hangs"])
async def test_dead_embedder_falls_back_to_keywords(
    fault: str, cozy_home: Path, fake_model: FakeModelServer
) -> None:
    rt = await open_runtime(cozy_home, fake_model.url, EMBED.format(url=fake_model.url))
    try:
        k = rt.engines["knowledge"]
        note = cozy_home / "notes" / "boiler.md"
        note.parent.mkdir()
        note.write_text("# Boiler\n\nBleed the radiators every autumn.\n")
        await k.add_paths([note], user_id="local", collection="home")  # type: ignore[attr-defined]
        with noting() as notes:
            hits = await k.search_knowledge("radiators autumn", user_id="local")  # type: ignore[attr-defined]
        assert hits and not notes  # hybrid, healthy
        if fault == "errors":
            fake_model.fail_next(500, times=50, path="/v1/embeddings")
        else:
            fake_model.fail_next(hang=True, times=50, path="/v1/embeddings")
        with noting() as notes:
            hits = await k.search_knowledge("bleed the radiators", user_id="local")  # type: ignore[attr-defined]
        assert "radiators" in hits[0].text
        assert "keywords only" in " ".join(notes)
        fake_model.queue_reply("Bleed them in autumn.")
        events = await collect(rt.orchestrator.run(req("when do I bleed the radiators?")))
        ctx = next(e for e in events if isinstance(e, ContextBuilt)).metadata
        assert ctx["engines"]["knowledge"]["degraded"]
        assert any("knowledge" in r and "keywords only" in r for r in ctx["degrade_reasons"])
        sent = fake_model.turn_requests()[-1]["messages"]
        assert any("Bleed the radiators" in str(m.get("content")) for m in sent)
    finally:
        fake_model.reset()
        await rt.close()
