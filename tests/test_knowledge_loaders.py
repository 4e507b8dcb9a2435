"""Knowledge loaders and chunking on small files the tests write."""

from __future__ import annotations

from pathlib import Path

import pytest
from knowledge_files import write_docx, write_pdf

from cozy.engines.knowledge.chunking import chunk_blocks
from cozy.engines.knowledge.extract import extract_file, extract_text
from cozy.engines.knowledge.loaders import Block
from cozy.engines.knowledge.retrieval import citation
from cozy.engines.knowledge.textio import LoadError
from cozy.engines.retrieval.fusion import best_first, rrf
from cozy.engines.retrieval.terms import DOC_STOPWORDS, match_expr, query_terms

MD = """---
title: ignored front matter
---
# Security

Intro paragraph.

## Key rotation

We rotate keys every 90 days.
Run the rotate command.

```bash
# a comment, not a heading
cozy rotate --all
```

Ops notes
---------

Setext section body.
"""


def test_markdown_headings_code_fences_and_line_ranges(tmp_path: Path) -> None:
    path = tmp_path / "sec.md"
    path.write_text(MD, encoding="utf-8")
    doc = extract_file(path, target=40)
    assert doc.kind == "markdown" and doc.title == "Security"
    got = [(c.heading, c.line_start, c.line_end) for c in doc.chunks]
    assert got == [
        ("Security", 6, 6),
        ("Security › Key rotation", 10, 16),
        ("Security › Ops notes", 21, 21),
    ]
    rotation = doc.chunks[1]
    assert "# a comment, not a heading" in rotation.text  # inside the fence: not a heading
    assert rotation.embed_text.startswith("Security › Key rotation\n")


def test_rst_html_text_and_docx(tmp_path: Path) -> None:
    rst = tmp_path / "guide.rst"
    rst.write_text("=====\nGuide\n=====\n\nInstall\n-------\n\nRun pip.\n\nUse\n---\n\nCall it.\n")
    doc = extract_file(rst)
    assert [(c.heading, c.text) for c in doc.chunks] == [
        ("Guide › Install", "Run pip."),
        ("Guide › Use", "Call it."),
    ]
    html = tmp_path / "page.html"
    html.write_text(
        "<html><head><title>My Page</title><style>p{color:red}</style></head><body>\n"
        "<h1>Main</h1><p>Hello <b>world</b>.</p>\n<script>var hidden = 1;</script>\n"
        "<h2>Details</h2><p>Detail text.</p></body></html>\n"
    )
    doc = extract_file(html)
    assert doc.title == "My Page"
    assert [(c.heading, c.text) for c in doc.chunks] == [
        ("Main", "Hello world."),
        ("Main › Details", "Detail text."),
    ]
    assert all("hidden" not in c.text and "color" not in c.text for c in doc.chunks)
    txt = tmp_path / "notes.txt"
    txt.write_text("first para\nstill first\n\nsecond para\n")
    doc = extract_file(txt)
    assert [(c.text, c.line_start, c.line_end) for c in doc.chunks] == [
        ("first para\nstill first\n\nsecond para", 1, 4)
    ]
    docx = write_docx(
        tmp_path / "hb.docx",
        [("Title", "Handbook"), ("Heading1", "Onboarding"), ("", "Get a laptop.")],
    )
    doc = extract_file(docx)
    assert [(c.heading, c.text) for c in doc.chunks] == [("Handbook › Onboarding", "Get a laptop.")]


def test_pdf_text_per_page_and_corrupt_pdf(tmp_path: Path) -> None:
    pdf = write_pdf(tmp_path / "paper.pdf", ["Attention is all you need.", "Page two: heads."])
    doc = extract_file(pdf)
    assert [(c.page, c.text) for c in doc.chunks] == [
        (1, "Attention is all you need."),
        (2, "Page two: heads."),
    ]
    assert citation({"path": str(pdf), "page": 2, "heading": ""}).endswith("paper.pdf p. 2")
    bad = tmp_path / "broken.pdf"
    bad.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 9 0 R >> endobj\ngarbage")
    with pytest.raises(LoadError) as info:
        extract_file(bad)
    assert not info.value.skipped and "PDF" in info.value.reason


def test_code_keeps_symbols(tmp_path: Path) -> None:
    src = tmp_path / "svc.py"
    src.write_text(
        "import os\n\n\nclass Vault:\n    def rotate(self):\n        return 1\n\n"
        "    def revoke(self):\n        return 2\n\n\ndef main():\n    Vault().rotate()\n"
    )
    doc = extract_file(src)
    assert doc.kind == "code:python"
    got = {c.symbol: (c.line_start, c.line_end) for c in doc.chunks}
    assert got["Vault.rotate"] == (5, 7) and got["Vault.revoke"] == (8, 11)
    assert got["main"] == (12, 13)
    go = tmp_path / "main.go"
    go.write_text("package main\n\nfunc Serve(addr string) error {\n\treturn nil\n}\n")
    assert [c.symbol for c in extract_file(go).chunks] == [None, "Serve"]


def test_binaries_encodings_and_empty(tmp_path: Path) -> None:
    png = tmp_path / "img.txt"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    with pytest.raises(LoadError) as info:
        extract_file(png)
    assert info.value.skipped and "binary" in info.value.reason
    latin = tmp_path / "latin.txt"
    french = (
        "Le café crème est servi à la terrasse. Très légère, la brûlée française se déguste "
        "après le déjeuner.\nOù est la bibliothèque? Elle se trouve près de l'église, à côté "
        "du marché où l'on vend des pêches."
    )
    latin.write_bytes(french.encode("cp1252"))
    assert extract_file(latin).chunks[0].text == french
    utf16 = tmp_path / "wide.txt"
    utf16.write_text("Grüße aus Köln", encoding="utf-16")
    assert extract_file(utf16).chunks[0].text == "Grüße aus Köln"
    empty = tmp_path / "empty.md"
    empty.write_text("\n\n")
    assert extract_file(empty).chunks == []


def test_chunk_size_overlap_and_section_boundaries() -> None:
    words = " ".join(f"w{i}" for i in range(400))
    blocks = [
        Block(words, headings=("A",), line_start=1, line_end=1),
        Block("short b", headings=("B",), line_start=3, line_end=3),
    ]
    chunks = list(chunk_blocks(blocks, target=50, overlap=10))
    a = [c for c in chunks if c.heading == "A"]
    assert len(a) > 5 and all(c.tokens <= 50 + 12 for c in a)
    # consecutive chunks overlap: the next one starts with the previous one's tail
    assert a[1].text.split()[0] in a[0].text.split()
    assert [c.text for c in chunks if c.heading == "B"] == ["short b"]  # never merged across


def test_huge_line_and_inline_text() -> None:
    doc = extract_text("x" * 10_000, "text", target=100)
    # windows of the target size, plus the overlap carried from the previous chunk
    assert len(doc.chunks) >= 20 and all(len(c.text) <= 400 + 30 * 4 + 2 for c in doc.chunks)
    with pytest.raises(LoadError):
        extract_text("%PDF", "pdf")


def fts_query(text: str) -> str | None:
    return match_expr(query_terms(text, stopwords=DOC_STOPWORDS, fallback=True))


def test_query_building_and_rrf() -> None:
    assert fts_query("How do we rotate the keys?") == '"rotate" OR "keys"'
    assert fts_query("the") == '"the"' and fts_query("?!") is None
    assert fts_query('a "quoted" OR (weird) NEAR') == '"quoted" OR "weird" OR "near"'
    fused = best_first(rrf([[(1, 0), (2, 0), (3, 0)], [(3, 0), (1, 0), (4, 0)]]))
    assert [c for c, _ in fused][:2] == [1, 3]
