"""Structural chunking: pack blocks into chunks of a target size, never across sections.

A chunk never spans two headings, two pages or two code symbols. Inside a section,
paragraphs are packed up to `target` tokens; the next chunk starts with the tail
of the previous one (`overlap` tokens). Oversized blocks are split on lines, then
on words. Each chunk keeps its heading path and its line range or page.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from cozy.engines.knowledge.loaders import Block

CHARS_PER_TOKEN = 4  # the same cheap estimate as the context budget
HEADING_SEP = " › "


def tokens_of(text: str) -> int:
    return max(1, (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN)


def text_hash(text: str) -> str:
    """Hash of the normalised text, used to collapse duplicates and reuse embeddings."""
    norm = " ".join(text.split()).lower()  # str.split and re's \s agree on whitespace
    return hashlib.sha1(norm.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(slots=True)
class Chunk:
    text: str
    heading: str = ""
    line_start: int | None = None
    line_end: int | None = None
    page: int | None = None
    symbol: str | None = None

    @property
    def tokens(self) -> int:
        return tokens_of(self.text)

    @property
    def embed_text(self) -> str:
        """What gets embedded: the heading path gives a chunk its topic."""
        return f"{self.heading}\n{self.text}" if self.heading else self.text


@dataclass(slots=True)
class _Piece:
    text: str
    start: int | None
    end: int | None
    overlap: bool = False

    @property
    def tokens(self) -> int:
        return tokens_of(self.text)


def _split(block: Block, target: int) -> list[_Piece]:
    if tokens_of(block.text) <= target:
        return [_Piece(block.text, block.line_start, block.line_end)]
    pieces: list[_Piece] = []
    lines = block.text.split("\n")
    buf: list[str] = []
    buf_start: int | None = None
    size = 0
    for i, line in enumerate(lines):
        lineno = block.line_start + i if block.line_start is not None else None
        if tokens_of(line) > target:  # one huge line: cut it into word windows
            if buf:
                pieces.append(_Piece("\n".join(buf), buf_start, lineno and lineno - 1))
                buf, size = [], 0
            pieces.extend(_Piece(w, lineno, lineno) for w in _windows(line, target))
            continue
        if buf and size + tokens_of(line) > target:
            pieces.append(_Piece("\n".join(buf), buf_start, lineno and lineno - 1))
            buf, size = [], 0
        if not buf:
            buf_start = lineno
        buf.append(line)
        size += tokens_of(line) + 1
    if buf:
        pieces.append(_Piece("\n".join(buf), buf_start, block.line_end))
    return [p for p in pieces if p.text.strip()]


def _windows(text: str, target: int) -> Iterator[str]:
    limit = target * CHARS_PER_TOKEN
    words = text.split()
    buf: list[str] = []
    size = 0
    for word in words:
        if buf and size + len(word) + 1 > limit:
            yield " ".join(buf)
            buf, size = [], 0
        if len(word) > limit:  # no spaces at all (minified text): hard cut
            for i in range(0, len(word), limit):
                yield word[i : i + limit]
            continue
        buf.append(word)
        size += len(word) + 1
    if buf:
        yield " ".join(buf)


def _tail(piece: _Piece, overlap: int) -> _Piece | None:
    if overlap <= 0:
        return None
    limit = overlap * CHARS_PER_TOKEN
    text = piece.text
    if len(text) > limit:
        cut = text[-limit:]
        space = cut.find(" ")
        text = cut[space + 1 :] if 0 <= space < len(cut) // 2 else cut
    return _Piece(text, piece.end, piece.end, overlap=True)


def chunk_blocks(
    blocks: Iterable[Block], *, target: int = 200, overlap: int = 30
) -> Iterator[Chunk]:
    if target < 16:
        raise ValueError("chunk target must be at least 16 tokens")
    overlap = max(0, min(overlap, target // 2))
    key: tuple[object, ...] | None = None
    current: list[_Piece] = []
    size = 0
    meta: Block | None = None

    def emit() -> Chunk | None:
        if meta is None or not any(not p.overlap for p in current):
            return None
        starts = [p.start for p in current if p.start is not None]
        ends = [p.end for p in current if p.end is not None]
        return Chunk(
            "\n\n".join(p.text for p in current),
            HEADING_SEP.join(meta.headings),
            min(starts) if starts else None,
            max(ends) if ends else None,
            meta.page,
            meta.symbol,
        )

    for block in blocks:
        block_key = (block.headings, block.page, block.symbol)
        if block_key != key:
            chunk = emit()
            if chunk is not None:
                yield chunk
            key, current, size, meta = block_key, [], 0, block
        for piece in _split(block, target):
            if current and size + piece.tokens > target:
                chunk = emit()
                if chunk is not None:
                    yield chunk
                tail = _tail(current[-1], overlap)
                current = [tail] if tail is not None else []
                size = tail.tokens if tail is not None else 0
            current.append(piece)
            size += piece.tokens
    chunk = emit()
    if chunk is not None:
        yield chunk
