"""A fresh process's hybrid search while the embedding model loads.

A search nobody else waits on (`cozy knowledge search`, wait=None) waits for the
model, bounded by `knowledge.search_wait`, and answers with vectors; the context
stage of a turn (a short wait) answers from keywords at once and says why. Either
way a search that gave up on the vectors says "still loading ... keywords only" and
is not cached, so the next search, once the model is there, is hybrid."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from helpers import cozy, opened
from knowledge_files import pets_and_lunch

from cozy.engines.base import EmbedEngine, EngineContext
from cozy.engines.degraded import noting
from cozy.engines.embed.local import LocalEmbedder
from cozy.engines.knowledge.provider import LocalKnowledge
from cozy.storage.store import Store


@pytest.fixture(scope="module")
def minilm() -> LocalEmbedder:
    emb = LocalEmbedder({})
    if not emb.available():
        pytest.skip("all-MiniLM-L6-v2 not installed (run ./install.sh)")
    return emb


async def test_a_cold_embedder_is_waited_for_only_by_a_search_nobody_else_waits_on(
    tmp_path: Path, minilm: LocalEmbedder
) -> None:
    store = await Store.open(f"sqlite:///{tmp_path / 'k.db'}")
    try:
        ready = LocalKnowledge({}, EngineContext(store=store, embedder=minilm))
        await ready.add_paths([pets_and_lunch(tmp_path)], user_id="u", collection="c", wait=True)
        gate = asyncio.Event()
        loads = 0

        async def load() -> EmbedEngine:  # the model loads once the test opens the gate
            nonlocal loads
            loads += 1
            await gate.wait()
            return minilm

        # a fresh process: the same database, the embedder not loaded yet
        fresh = LocalKnowledge(
            {"search_wait": 0.05}, EngineContext(store=store, load_embedder=load)
        )
        # the context stage of a turn: keywords at once, with the reason
        with noting() as notes:
            hits = await fresh.search_knowledge("canteen soup", user_id="u")
        assert "soup" in hits[0].text
        reason = " ".join(notes)
        assert reason and "still loading" in reason and "keywords only" in reason
        assert hits[0].metadata["vector_rank"] is None and hits[0].metadata["partial"]
        # a direct search past its bound: the same, naming how long it waited
        with noting() as notes:
            hits = await fresh.search("canteen soup", user_id="u")
        assert "waited 0.05s" in " ".join(notes)
        # a direct search within its bound: the model loads meanwhile, the answer is hybrid
        fresh.search_wait = 60.0
        with noting() as notes:
            search = asyncio.ensure_future(fresh.search("a puppy", user_id="u"))
            await asyncio.sleep(0)
            assert not search.done()
            gate.set()
            hits = await search
        assert "Biscuit" in hits[0].text  # no word in common: found by its vector
        assert not notes and hits[0].metadata["vector_rank"] == 1
        assert "notes" not in hits[0].metadata
        # the context stage's search too, now that the model is there (not a cached miss)
        with noting() as notes:
            hits = await fresh.search_knowledge("canteen soup", user_id="u")
        assert not notes and hits[0].metadata["vector_rank"] is not None
        assert loads == 1
    finally:
        await store.close()


def test_cli_search_in_a_fresh_process_is_hybrid(cozy_home: Path, tmp_path: Path) -> None:
    if not LocalEmbedder({}).available():
        pytest.skip("all-MiniLM-L6-v2 not installed (run ./install.sh)")
    # the bound far away: a loaded machine takes long to load the model, never this long
    (cozy_home / "engines.yaml").write_text(
        "embed: {provider: local}\nknowledge: {provider: local, search_wait: 600}\n"
    )
    r = cozy("knowledge", "add", str(pets_and_lunch(tmp_path)), "-c", "c", "--wait", timeout=300)
    assert r.returncode == 0, r.stderr
    # every `cozy knowledge search` is a cold start: it waits for the model to load
    r = cozy("knowledge", "search", "a puppy", "--json", timeout=900)
    assert r.returncode == 0, r.stderr
    hits = json.loads(r.stdout)
    assert "Biscuit" in hits[0]["text"] and hits[0]["vector_rank"] == 1
    assert "keywords only" not in r.stderr
    # bounded: with no time to load, keywords, and the reason on stderr
    (cozy_home / "engines.yaml").write_text(
        "embed: {provider: local}\nknowledge: {provider: local, search_wait: 0}\n"
    )
    r = cozy("knowledge", "search", "canteen soup", timeout=300)
    assert r.returncode == 0, r.stderr
    assert "soup" in r.stdout
    assert "still loading" in r.stderr and "keywords only" in r.stderr


async def test_a_one_shot_command_does_not_load_the_model_it_never_uses(
    cozy_home: Path, tmp_path: Path
) -> None:
    from cozy.runtime import Runtime
    from cozy.settings import Settings

    if not LocalEmbedder({}).available():
        pytest.skip("all-MiniLM-L6-v2 not installed (run ./install.sh)")
    (cozy_home / "engines.yaml").write_text(
        "embed: {provider: local}\nknowledge: {provider: local, search_wait: 600}\n"
    )
    rt = await Runtime.open(Settings(home=cozy_home), engines=False)
    try:
        k = await rt.engine("knowledge")
        assert isinstance(k, LocalKnowledge)
        await k.add_paths([pets_and_lunch(tmp_path)], user_id="u", collection="c", wait=True)
    finally:
        await rt.close()
    # `cozy knowledge stats/list/add` (engines opened lazily): no model load to wait for
    rt = await Runtime.open(Settings(home=cozy_home), engines=False)
    try:
        k = await rt.engine("knowledge")
        assert isinstance(k, LocalKnowledge)
        assert (await k.stats(user_id="u"))["c"]["pending_vectors"] == 0
        assert k.embeddings.engine is None and not k.embeddings.loading
        hits = await k.search("a puppy", user_id="u")  # a search loads it when it needs it
        assert "Biscuit" in hits[0].text and hits[0].metadata["vector_rank"] == 1
    finally:
        await rt.close()
    # a chat, the TUI, the server: the model starts loading when the engines open
    async with opened(Settings(home=cozy_home)) as rt:
        k = rt.engines["knowledge"]
        assert isinstance(k, LocalKnowledge)
        assert k.embeddings.loading or k.embeddings.engine is not None
