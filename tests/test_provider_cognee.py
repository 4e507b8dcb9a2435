"""knowledge.cognee: the real cognee library, against the fake model server.

cognee needs openai<3 (cozy's venv has openai 3.x), so it lives in its own venv,
`.venv-cognee`, built by `./install.sh --dev`. In the main venv this file runs ONE
test that starts the fake model server and re-runs this same file with
`.venv-cognee/bin/python -m pytest` (COZY_COGNEE_INNER=1); the inner run does the
real work in-process (cognee imported once: it takes many seconds). Any network
attempt to a non-loopback address fails the inner test.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import opened
from net_guard import loopback_only

ROOT = Path(__file__).resolve().parent.parent
COGNEE_PY = ROOT / ".venv-cognee" / "bin" / "python"
INNER = os.environ.get("COZY_COGNEE_INNER") == "1"

# one reply that is valid for every structured output cognify asks for
# (SummarizedContent and KnowledgeGraph: pydantic ignores the other fields)
COGNIFY_JSON = {
    "summary": "a note",
    "description": "a note from the user",
    "nodes": [],
    "edges": [],
}


if not INNER:

    def test_cognee_in_its_own_venv(fake_model: Any, tmp_path: Path) -> None:
        if not COGNEE_PY.exists():
            pytest.skip("no .venv-cognee: build it with `./install.sh --dev`")
        fake_model.add_rule(user_contains="", json=COGNIFY_JSON)
        env = {
            **os.environ,
            "COZY_COGNEE_INNER": "1",
            "COZY_TEST_FAKE_URL": fake_model.url,
            "COZY_HOME": str(tmp_path / "home"),
        }
        proc = subprocess.run(
            [str(COGNEE_PY), "-m", "pytest", __file__, "-q", "-p", "no:cacheprovider", "-x"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        tail = (proc.stdout + proc.stderr)[-6000:]
        assert proc.returncode == 0, tail
        assert "2 passed" in proc.stdout, tail
        # cognee really called the (fake) model and embeddings through cozy's endpoints
        paths = {r.path for r in fake_model.requests}
        assert "/v1/chat/completions" in paths and "/v1/embeddings" in paths

    @pytest.mark.skipif(
        importlib.util.find_spec("cognee") is not None, reason="cognee is installed here"
    )
    async def test_missing_extra_names_the_install_command(cozy_home: Path) -> None:
        from cozy.engines.base import EngineContext
        from cozy.engines.knowledge.cognee_provider import CogneeKnowledge

        engine = CogneeKnowledge(
            {"llm": {"llm_provider": "custom"}, "embedding": {"embedding_provider": "openai"}},
            EngineContext(settings=type("S", (), {"data_dir": cozy_home})()),
        )
        health = await engine.health_check()
        assert not health.ok and "./install.sh --extras cognee" in health.fix
        assert "cognee" not in sys.modules  # and nothing half-imported stayed behind

else:

    @pytest.fixture(autouse=True)
    def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
        with loopback_only(monkeypatch, "cognee") as attempts:
            yield attempts

    @pytest.fixture
    def home() -> Path:
        return Path(os.environ["COZY_HOME"])

    def test_openai_2_still_drives_cozy(home: Path) -> None:
        """This venv pins openai<3: cozy's openai provider must work with it."""
        import openai

        from cozy.core.types import Message
        from cozy.engines.ai.openai_provider import OpenAIProvider

        assert int(openai.__version__.split(".")[0]) == 2
        url = os.environ["COZY_TEST_FAKE_URL"]

        async def go() -> str:
            engine = OpenAIProvider({"base_url": f"{url}/v1", "api_key": "k"})
            await engine.initialize()
            try:
                chunks = [
                    c.delta
                    async for c in engine.chat_stream([Message("user", "ping")], model="fake-model")
                ]
                return "".join(chunks)
            finally:
                await engine.close()

        assert asyncio.run(go())  # the fake's scripted JSON, streamed through openai 2.x

    @pytest.mark.timeout(900)
    def test_add_search_and_chat(home: Path) -> None:
        url = os.environ["COZY_TEST_FAKE_URL"]
        home.mkdir(parents=True, exist_ok=True)
        (home / "engines.yaml").write_text(
            "ai:\n  provider: openai\n  model: fake-model\n"
            f"  providers:\n    openai: {{base_url: '{url}/v1', api_key: test-key}}\n"
            f"embed: {{provider: openai, base_url: '{url}/v1', model: text-embedding-3-small,"
            " dimensions: 256, api_key: test-key}\n"
            "knowledge: {provider: cognee, timeout: 60}\n"
            # only the engine under test: the packaged memory/profile timeouts (0.3-0.4 s)
            # would add their own (correct) degrade reason to the turn on a busy machine
            "memory: {provider: none}\nprofile: {provider: none}\n",
            encoding="utf-8",
        )
        asyncio.run(_scenario(home))

    async def _scenario(home: Path) -> None:
        from helpers import collect, req

        from cozy.core.events import ContextBuilt, Done
        from cozy.engines.knowledge.cognee_provider import CogneeKnowledge
        from cozy.settings import Settings

        async with opened(Settings(home=home)) as rt:
            kn = rt.engines["knowledge"]
            assert isinstance(kn, CogneeKnowledge)
            health = await kn.health_check()
            assert health.ok, health
            doc_id = await kn.add_knowledge(
                "The office wifi password rotates every month. Ask Ada in IT for it.",
                user_id="local",
                collection="office",
            )
            assert doc_id.startswith("cognee:local__office:")
            await kn.add_knowledge(
                "Bob's private notes: the boat is moored at pier nine.", user_id="bob"
            )
            hits = await kn.search_knowledge("wifi password", user_id="local")
            assert hits and "wifi password rotates" in hits[0].text
            assert hits[0].score > 0 and hits[0].citation.startswith("text_")
            # per-user datasets: bob's notes never reach another user
            assert all("boat" not in h.text for h in hits)
            assert await kn.search_knowledge("boat", user_id="carol") == []
            assert await kn.search_knowledge("wifi", user_id="local", collections=["x"]) == []
            # data lives under COZY_HOME
            assert (home / "cognee" / "system" / "databases").is_dir()
            # a chat gets the knowledge in its context
            events = await collect(rt.orchestrator.run(req("what about the wifi password?")))
            ctx = next(e for e in events if isinstance(e, ContextBuilt))
            assert not ctx.metadata["degraded"], ctx.metadata["degrade_reasons"]
            assert ctx.metadata["knowledge"], ctx.metadata
            assert isinstance(events[-1], Done) and events[-1].status == "complete"
