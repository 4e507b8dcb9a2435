"""Small document writers for the knowledge tests: real PDF and DOCX files, no libraries."""

from __future__ import annotations

import zipfile
from pathlib import Path

import sqlalchemy as sa

from cozy.engines.knowledge.provider import LocalKnowledge
from cozy.runtime import Runtime
from cozy.storage.tables.knowledge import chunks, documents


def write_pdf(path: Path, pages: list[str]) -> Path:
    """A valid PDF with one text line per paragraph on each page (Helvetica, 12 pt)."""
    objects: list[bytes] = []
    n = len(pages)
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(n))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {n} >>".encode())
    font_id = 3 + 2 * n
    for i, text in enumerate(pages):
        lines = []
        y = 760
        for para in text.split("\n\n"):
            for line in para.split("\n"):
                safe = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
                lines.append(f"BT /F1 12 Tf 72 {y} Td ({safe}) Tj ET")
                y -= 16
            y -= 24  # a gap between paragraphs
        stream = "\n".join(lines).encode("latin-1")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * i} 0 R "
            f"/Resources << /Font << /F1 {font_id} 0 R >> >> >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    size = len(objects) + 1
    out += f"trailer\n<< /Size {size} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    path.write_bytes(bytes(out))
    return path


W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def write_docx(path: Path, paragraphs: list[tuple[str, str]]) -> Path:
    """A minimal DOCX: (style, text) pairs, style '' for body text or 'Heading1'..."""
    body = []
    for style, text in paragraphs:
        ppr = f'<w:pPr><w:pStyle w:val="{style}"/></w:pPr>' if style else ""
        body.append(f"<w:p>{ppr}<w:r><w:t>{text}</w:t></w:r></w:p>")
    document = (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        f'<w:document xmlns:w="{W}"><w:body>{"".join(body)}</w:body></w:document>'
    )
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
            'content-types"><Override PartName="/word/document.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>',
        )
        z.writestr("word/document.xml", document)
    return path


async def knowledge(rt: Runtime) -> LocalKnowledge:
    engine = await rt.engine("knowledge")
    assert isinstance(engine, LocalKnowledge)
    return engine


async def integrity(rt: Runtime) -> list[tuple[str, int, int]]:
    """(path, chunk_count, chunk rows) per document; FTS rows must equal chunk rows."""
    async with rt.store.engine.connect() as conn:
        docs = (
            await conn.execute(sa.select(documents.c.id, documents.c.path, documents.c.chunk_count))
        ).all()
        out = []
        for doc_id, path, count in docs:
            n = (
                await conn.execute(sa.select(sa.func.count()).where(chunks.c.document_id == doc_id))
            ).scalar_one()
            out.append((path, count, n))
        total = (await conn.execute(sa.select(sa.func.count()).select_from(chunks))).scalar_one()
        fts = (await conn.exec_driver_sql("SELECT count(*) FROM knowledge_fts")).scalar_one()
        hits = (
            await conn.exec_driver_sql(
                "SELECT count(*) FROM knowledge_fts WHERE knowledge_fts MATCH 'zebra'"
            )
        ).scalar_one()
        real = (
            await conn.execute(sa.select(sa.func.count()).where(chunks.c.text.like("%zebra%")))
        ).scalar_one()
    assert fts == total and hits == real
    return out


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def pets_and_lunch(root: Path) -> Path:
    """`root/docs` with two short notes (the office dog; Wednesday's soup): a vector
    search for "puppy" finds the first with no word in common."""
    docs = root / "docs"
    docs.mkdir()
    (docs / "pets.md").write_text("# Pets\n\nOur office dog Biscuit sleeps under desk four.\n")
    (docs / "food.md").write_text("# Lunch\n\nThe canteen serves soup on Wednesdays.\n")
    return docs
