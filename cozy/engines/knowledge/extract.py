"""One entry point from a file (or a text) to its chunks: pick the loader, chunk it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cozy.core.errors import UsageError
from cozy.engines.knowledge.chunking import Chunk, chunk_blocks
from cozy.engines.knowledge.code import kind_of
from cozy.engines.knowledge.loaders import (
    Block,
    code_blocks,
    markdown_blocks,
    rst_blocks,
    text_blocks,
)
from cozy.engines.knowledge.textio import LoadError, iter_lines, open_text, text_lines

KINDS = ("markdown", "rst", "html", "pdf", "docx", "text")


@dataclass(slots=True)
class Extracted:
    kind: str
    title: str
    chunks: list[Chunk] = field(default_factory=list)


def _line_blocks(kind: str, lines: Iterable[str]) -> Iterator[Block]:
    if kind == "markdown":
        return markdown_blocks(lines)
    if kind == "rst":
        return rst_blocks(lines)
    if kind.startswith("code:"):
        return code_blocks(lines, kind.partition(":")[2])
    return text_blocks(lines)


def _collect(
    kind: str, title: str, blocks: Iterable[Block], target: int, overlap: int
) -> Extracted:
    out = Extracted(kind, title)
    for chunk in chunk_blocks(_titled(blocks, out), target=target, overlap=overlap):
        out.chunks.append(chunk)
    return out


def _titled(blocks: Iterable[Block], out: Extracted) -> Iterator[Block]:
    """Pass blocks through; the first heading becomes the title when there is none."""
    for block in blocks:
        if not out.title and block.headings and not out.kind.startswith("code:"):
            out.title = block.headings[0]
        yield block


def extract_file(path: Path, *, target: int = 200, overlap: int = 30) -> Extracted:
    """Load and chunk one file. Raises LoadError with a user-facing reason."""
    kind = kind_of(path)
    if kind == "pdf":
        from cozy.engines.knowledge.loaders_rich import pdf_blocks

        title, blocks = pdf_blocks(path)
        return _collect(kind, title, blocks, target, overlap)
    if kind == "docx":
        from cozy.engines.knowledge.loaders_rich import docx_blocks

        title, blocks = docx_blocks(path)
        return _collect(kind, title, blocks, target, overlap)
    source = open_text(path)
    if kind == "html":
        from cozy.engines.knowledge.loaders_rich import html_blocks, read_pieces

        head = next(read_pieces(source, 16 * 1024), "")
        title, blocks = html_blocks(read_pieces(source), head)
        return _collect(kind, title, blocks, target, overlap)
    return _collect(kind, "", _line_blocks(kind, iter_lines(source)), target, overlap)


def extract_text(text: str, kind: str, *, target: int = 200, overlap: int = 30) -> Extracted:
    """Chunk an in-memory text (add_knowledge from the server or a tool)."""
    if kind in ("pdf", "docx"):
        raise LoadError(f"{kind} must be added as a file, not as text")
    if kind == "html":
        from cozy.engines.knowledge.loaders_rich import html_blocks

        title, blocks = html_blocks([text], text[: 16 * 1024])
        return _collect(kind, title, blocks, target, overlap)
    return _collect(kind, "", _line_blocks(kind, text_lines(text)), target, overlap)


def text_kind(meta: dict[str, Any], source: str) -> str:
    """An inline document's kind: `meta["kind"]` (taken out of `meta`), else what the
    source's name says, else markdown. An unknown kind is refused."""
    kind = str(meta.pop("kind", "") or (kind_of(Path(source)) if source else "markdown"))
    if kind not in KINDS and not kind.startswith("code:"):
        raise UsageError(f"unknown document kind '{kind}'", hint=f"use one of {KINDS}")
    return kind
