"""`cozy knowledge` as a user runs it (subprocess), and hybrid search with real embeddings."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import cozy, running, write_engines
from knowledge_files import pets_and_lunch

from cozy.engines.knowledge.provider import LocalKnowledge
from cozy.testing import FakeModelServer


def test_cli_add_search_list_stats_rm(
    cozy_home: Path, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    write_engines(cozy_home, fake_model.url, "knowledge: {provider: local, embed: false}\n")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "keys.md").write_text("# Keys\n\n## Rotation\n\nWe rotate keys every 90 days.\n")
    (notes / "blob.txt").write_bytes(b"\x00\x01\x02binary")
    r = cozy("knowledge", "add", str(notes), str(tmp_path / "missing"), "-c", "work")
    assert r.returncode == 1  # one path failed, the rest is indexed
    assert "added" in r.stderr and "keys.md (1 chunks)" in r.stderr
    assert "no such file or directory" in r.stderr and "binary" in r.stderr
    r = cozy("knowledge", "search", "how do we rotate keys", "--json")
    assert r.returncode == 0, r.stderr
    hits = json.loads(r.stdout)
    assert hits[0]["citation"].endswith("keys.md:5 § Keys › Rotation")
    assert hits[0]["collection"] == "work" and hits[0]["line_start"] == 5
    r = cozy("knowledge", "add", str(notes), "-c", "work", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["counts"] == {"unchanged": 1, "skipped": 1}
    stats = json.loads(cozy("knowledge", "stats", "--json").stdout)
    assert stats["work"]["documents"] == 1 and stats["work"]["chunks"] == 1
    assert json.loads(cozy("knowledge", "collections", "--json").stdout) == ["work"]
    assert cozy("knowledge", "add", str(notes), "-c", "bad name!").returncode == 2
    r = cozy("knowledge", "rm", str(notes / "keys.md"))
    assert r.returncode == 0 and "removed" in r.stderr
    assert json.loads(cozy("knowledge", "list", "--json").stdout) == []
    r = cozy("knowledge", "rm", "nothing-here")
    assert r.returncode == 2 and "cozy knowledge list" in r.stderr


async def test_hybrid_with_local_embeddings_and_backfill(
    cozy_home: Path, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    docs = pets_and_lunch(tmp_path)
    async with running(cozy_home, fake_model.url, "embed: {provider: local}\n") as rt:
        k = await rt.engine("knowledge")
        assert isinstance(k, LocalKnowledge)
        first = await k.add_paths([docs], user_id="local", collection="c", embed=False)
        assert first.counts() == {"added": 2}
        with_vectors = await k.add_paths([docs], user_id="local", collection="c")
        assert {r.status for r in with_vectors.results} == {"unchanged"}
        assert with_vectors.pending_vectors == 0  # `wait` (the default): embedded on return
        # no word in common with the answer: only the vector side can find it
        hits = await k.search("puppy", user_id="local", mode="vector", limit=1)
        assert "Biscuit" in hits[0].text and hits[0].metadata["similarity"] > 0.2
        hybrid = await k.search("puppy", user_id="local")
        assert "Biscuit" in hybrid[0].text and hybrid[0].metadata["vector_rank"] == 1
        assert await k.search("puppy", user_id="local", mode="bm25") == []
        stats = await k.stats(user_id="local")
        assert sum(stats["c"]["embedded"].values()) == 2
