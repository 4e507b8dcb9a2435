"""The local knowledge engine end to end: real SQLite/FTS5, real files, the fake model only."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from helpers import collect, req, running
from knowledge_files import integrity, knowledge, write, write_pdf

from cozy.core.events import ContextBuilt, Done
from cozy.core.types import Caller
from cozy.engines.base import ToolContext
from cozy.testing import FakeModelServer

NO_EMBED = "knowledge: {provider: local, embed: false}\n"


async def test_reingest_after_edit_delete_and_rename(
    cozy_home: Path, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    notes = tmp_path / "notes"
    write(notes / "keys.md", "# Keys\n\nWe rotate the signing keys every 90 days.\n")
    write(notes / "wifi.md", "# Wifi\n\nThe guest wifi password is zebra-42.\n")
    write(notes / "sub" / "plants.txt", "Water the ficus on Mondays.\n")
    async with running(cozy_home, fake_model.url, NO_EMBED) as rt:
        k = await knowledge(rt)
        first = await k.add_paths([notes], user_id="local", collection="work")
        assert first.counts() == {"added": 3} and not first.failed
        hit = (await k.search("signing keys rotate", user_id="local"))[0]
        assert hit.citation.endswith("keys.md:3 § Keys") and "90 days" in hit.text
        old_plants = await k.list_documents(user_id="local")

        write(notes / "keys.md", "# Keys\n\nWe rotate the signing keys every 30 days now.\n")
        (notes / "wifi.md").unlink()
        (notes / "sub" / "plants.txt").rename(notes / "sub" / "garden.txt")
        second = await k.add_paths([notes], user_id="local", collection="work")
        statuses = {Path(r.path).name: r.status for r in second.results}
        assert statuses == {"keys.md": "updated", "garden.txt": "renamed", "wifi.md": "removed"}
        hits = await k.search("signing keys", user_id="local")
        assert [h.text for h in hits] == ["We rotate the signing keys every 30 days now."]
        assert await k.search("zebra wifi password", user_id="local") == []
        docs = {Path(d.path).name: d for d in await k.list_documents(user_id="local")}
        assert set(docs) == {"keys.md", "garden.txt"}
        renamed_before = next(d for d in old_plants if d.path.endswith("plants.txt"))
        assert docs["garden.txt"].id == renamed_before.id  # moved, not re-indexed
        third = await k.add_paths([notes], user_id="local", collection="work")
        assert third.counts() == {"unchanged": 2}
        assert all(count == rows for _, count, rows in await integrity(rt))


async def test_bad_files_are_reported_and_the_rest_indexed(
    cozy_home: Path, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    write(docs / "good.md", "# Good\n\nA perfectly fine note about zebra crossings.\n")
    write_pdf(docs / "paper.pdf", ["Transformers use attention.", "Heads attend in parallel."])
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4\n1 0 obj << /Pages 9 0 R >> endobj\nnonsense")
    (docs / "photo.txt").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(512))
    (docs / "loop").symlink_to(docs)  # a symlink loop
    big = write(docs / "big.txt", "word " * 300_000)
    async with running(
        cozy_home, fake_model.url, "knowledge: {provider: local, embed: false, max_file_mb: 1}\n"
    ) as rt:
        k = await knowledge(rt)
        report = await k.add_paths(
            [docs, tmp_path / "missing.md"], user_id="local", collection="papers"
        )
        by_name = {Path(r.path).name: r for r in report.results}
        assert by_name["good.md"].status == "added" and by_name["paper.pdf"].status == "added"
        assert by_name["broken.pdf"].status == "failed" and "PDF" in by_name["broken.pdf"].detail
        assert by_name["photo.txt"].status == "skipped" and "binary" in by_name["photo.txt"].detail
        assert by_name["missing.md"].status == "failed"
        assert by_name[big.name].status == "skipped" and "max_file_mb" in by_name[big.name].detail
        assert any("symlink loop" in r.detail for r in report.results)
        assert report.failed
        hit = (await k.search("attend in parallel", user_id="local"))[0]
        assert hit.metadata["page"] == 2 and hit.citation.endswith("paper.pdf p. 2")


async def test_cancelled_ingestion_leaves_whole_documents(
    cozy_home: Path, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    tree = tmp_path / "tree"
    for i in range(40):
        body = "\n\n".join(f"Paragraph {j} of file {i} mentions zebra {j}." for j in range(30))
        write(tree / f"f{i:02}.md", f"# File {i}\n\n{body}\n")
    async with running(
        cozy_home,
        fake_model.url,
        "knowledge: {provider: local, embed: false, chunk_tokens: 32, batch_files: 2}\n",
    ) as rt:
        k = await knowledge(rt)
        seen: list[str] = []

        def on_result(r: Any) -> None:
            seen.append(r.status)
            if len(seen) == 5:
                task.cancel()  # like Ctrl-C in the middle of a run

        task = asyncio.ensure_future(
            k.add_paths([tree], user_id="local", collection="c", on_result=on_result)
        )
        with pytest.raises(asyncio.CancelledError):
            await task
        state = await integrity(rt)
        assert 5 <= len(state) < 40
        assert all(count == rows and rows > 0 for _, count, rows in state)
        again = await k.add_paths([tree], user_id="local", collection="c")
        assert again.counts()["unchanged"] == len(state)
        assert again.counts()["added"] == 40 - len(state)


async def test_search_while_ingesting(
    cozy_home: Path, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    tree = tmp_path / "many"
    for i in range(30):
        write(tree / f"n{i:02}.md", f"# Note {i}\n\nThe zebra number {i} lives in paddock {i}.\n")
    async with running(cozy_home, fake_model.url, NO_EMBED) as rt:
        k = await knowledge(rt)
        ingest = asyncio.create_task(k.add_paths([tree], user_id="local", collection="z"))
        counts = []
        while not ingest.done():
            hits = await k.search("zebra paddock", user_id="local", limit=50)
            assert all(h.text.startswith("The zebra number") for h in hits)
            counts.append(len(hits))
            await asyncio.sleep(0)
        assert (await ingest).counts() == {"added": 30}
        assert len(await k.search("zebra paddock", user_id="local", limit=50)) == 30
        assert counts == sorted(counts)  # results only ever grow: no half-written document


PERSONALITY = """id: worker
name: Worker
system_prompt: You answer from the user's work documents and cite them as [n].
tools: ["knowledge.*"]
context: {memory: false, profile: false, knowledge: true, collections: [work]}
"""


async def test_personality_collections_scope_context_and_tool(
    cozy_home: Path, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    write(tmp_path / "w" / "deploy.md", "# Deploy\n\nDeploys happen on Tuesdays via the train.\n")
    write(tmp_path / "h" / "deploy.md", "# Home\n\nDeploy the garden hose on Tuesdays too.\n")
    write(cozy_home / "profiles" / "worker.yaml", PERSONALITY)
    async with running(cozy_home, fake_model.url, NO_EMBED) as rt:
        k = await knowledge(rt)
        await k.add_paths([tmp_path / "w"], user_id="local", collection="work")
        await k.add_paths([tmp_path / "h"], user_id="local", collection="home")
        events = await collect(
            rt.orchestrator.run(req("When do deploys happen?", personality="worker"))
        )
        ctx = next(e for e in events if isinstance(e, ContextBuilt))
        cites = [item["citation"] for item in ctx.metadata["knowledge"]]
        assert len(cites) == 1 and "/w/deploy.md:3 § Deploy" in cites[0]
        system = fake_model.turn_requests()[-1]["messages"][0]["content"]
        assert "via the train" in system and "garden hose" not in system
        assert "[1] " in system and "cite as [n]" in system
        done = events[-1]
        assert isinstance(done, Done)
        saved = (await rt.store.list_messages(done.session_id))[-1]
        assert saved.metadata["context"]["knowledge"][0]["citation"] == cites[0]

        # the built-in tool is scoped the same way
        tools = rt.engines["tools"]
        ctx_tool = ToolContext(caller=Caller(), personality_id="worker")
        out = await tools.execute_tool("knowledge.search", {"query": "deploy tuesdays"}, ctx_tool)
        assert "/w/deploy.md" in out.content and "garden" not in out.content
        denied = await tools.execute_tool(
            "knowledge.search", {"query": "deploy", "collection": "home"}, ctx_tool
        )
        assert denied.is_error and "not available to this personality" in denied.content


async def test_results_cached_and_invalidated_on_reingest(
    cozy_home: Path, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    note = write(tmp_path / "a" / "faq.md", "# FAQ\n\nThe office opens at nine.\n")
    async with running(cozy_home, fake_model.url, NO_EMBED) as rt:
        k = await knowledge(rt)
        await k.add_paths([note], user_id="local", collection="faq")
        first = await k.search("office opens", user_id="local")
        gen = await k.index.generation("local")
        from cozy.engines.knowledge.search import cache_key

        key = cache_key("local", "office opens", None, None, 5, "hybrid", gen)
        assert await rt.cache.get("knowledge", key) is not None
        write(note, "# FAQ\n\nThe office opens at ten.\n")
        await k.add_paths([note], user_id="local", collection="faq")
        second = await k.search("office opens", user_id="local")
        assert "nine" in first[0].text and "ten" in second[0].text
        # inline documents (the server's POST) work the same way
        doc_id = await k.add_knowledge(
            "# Parking\n\nVisitors park on level 2.", user_id="local", collection="faq"
        )
        again = await k.add_knowledge(
            "# Parking\n\nVisitors park on level 2.", user_id="local", collection="faq"
        )
        assert doc_id == again
        hit = (await k.search("where do visitors park", user_id="local"))[0]
        assert hit.metadata["document_id"] == doc_id and "level 2" in hit.text
