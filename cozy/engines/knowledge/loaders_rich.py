"""Loaders for HTML (stdlib parser, headings kept), PDF (pypdf, text per page), DOCX.

DOCX is a zip of XML: paragraphs and their heading styles are read with the
standard library, so no extra dependency is needed for it.
"""

from __future__ import annotations

import logging
import re
import zipfile
from collections.abc import Iterable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from xml.etree import ElementTree

from cozy.engines.knowledge.loaders import Block, HeadingStack
from cozy.engines.knowledge.textio import LoadError, TextSource

HEADING_TAGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
BLOCK_TAGS = {
    "p", "div", "li", "pre", "blockquote", "td", "th", "tr", "dt", "dd", "section",
    "article", "table", "ul", "ol", "br", "hr", "figcaption", "header", "footer", "main",
}  # fmt: skip
SKIP_TAGS = {"script", "style", "noscript", "template", "svg", "head", "nav"}


class _HTMLBlocks(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.heads = HeadingStack()
        self.out: list[Block] = []
        self.buf: list[str] = []
        self.start: int | None = None
        self.skip = 0
        self.heading: int | None = None
        self.pre = 0
        self.title_parts: list[str] = []
        self.in_title = False

    def _flush(self) -> None:
        raw = "".join(self.buf)
        text = raw.strip() if self.pre else re.sub(r"[ \t\r\f\v]*\n[ \t\r\f\v\n]*", "\n", raw)
        text = text.strip() if self.pre else re.sub(r"[ \t]+", " ", text).strip()
        if text:
            line = self.getpos()[0]
            kind = "code" if self.pre else "para"
            self.out.append(Block(text, kind, self.heads.path, self.start or line, line))
        self.buf, self.start = [], None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self.in_title = True
        if tag in SKIP_TAGS:
            self.skip += 1
            return
        if tag in HEADING_TAGS:
            self._flush()
            self.heading = HEADING_TAGS[tag]
        elif tag in BLOCK_TAGS:
            self._flush()
            if tag == "pre":
                self.pre += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        if tag in SKIP_TAGS:
            self.skip = max(0, self.skip - 1)
            return
        if tag in HEADING_TAGS and self.heading is not None:
            title = re.sub(r"\s+", " ", "".join(self.buf)).strip()
            self.buf, self.start = [], None
            if title:
                self.heads.set(self.heading, title)
            self.heading = None
        elif tag in BLOCK_TAGS:
            self._flush()
            if tag == "pre":
                self.pre = max(0, self.pre - 1)

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title_parts.append(data)
        if self.skip:
            return
        if self.start is None and data.strip():
            self.start = self.getpos()[0]
        self.buf.append(data)


def read_pieces(source: TextSource, size: int = 256 * 1024) -> Iterator[str]:
    with source.path.open("r", encoding=source.encoding, errors="replace") as fh:
        while piece := fh.read(size):
            yield piece


def html_blocks(pieces: Iterable[str], head: str) -> tuple[str, Iterator[Block]]:
    """HTML text with headings kept; `head` (the first few KB) gives the <title>."""
    parser = _HTMLBlocks()

    def gen() -> Iterator[Block]:
        for piece in pieces:
            parser.feed(piece)
            yield from parser.out
            parser.out.clear()
        parser.close()
        parser._flush()
        yield from parser.out

    m = re.search(r"<title[^>]*>(.*?)</title>", head, re.IGNORECASE | re.DOTALL)
    title = re.sub(r"\s+", " ", m.group(1)).strip() if m else ""
    return title, gen()


def pdf_blocks(path: Path) -> tuple[str, Iterator[Block]]:
    """Text per page; each page's paragraphs become blocks carrying the page number."""
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(str(path), strict=False)
        if reader.is_encrypted:
            try:
                reader.decrypt("")
            except Exception as exc:
                raise LoadError("encrypted PDF (needs a password)") from exc
        pages = len(reader.pages)
        meta_title = ""
        if reader.metadata is not None and reader.metadata.title:
            meta_title = str(reader.metadata.title)
    except LoadError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as exc:
        raise LoadError(f"corrupt or unreadable PDF ({type(exc).__name__}: {exc})") from exc

    def gen() -> Iterator[Block]:
        extracted = 0
        for number in range(pages):
            try:
                text = reader.pages[number].extract_text() or ""
            except Exception as exc:  # one broken page must not lose the others
                raise LoadError(f"corrupt PDF page {number + 1} ({type(exc).__name__})") from exc
            parts = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
            for part in parts:
                extracted += 1
                yield Block(part, "para", (), None, None, page=number + 1)
        if pages and not extracted:
            raise LoadError("PDF has no extractable text (scanned images?)", skipped=True)

    return meta_title, gen()


W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def docx_blocks(path: Path) -> tuple[str, Iterator[Block]]:
    """Paragraphs of word/document.xml; `Heading N` / `Title` styles become headings."""
    try:
        archive = zipfile.ZipFile(path)
        archive.getinfo("word/document.xml")
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise LoadError(f"corrupt DOCX ({type(exc).__name__}: {exc})") from exc

    def gen() -> Iterator[Block]:
        heads = HeadingStack()
        try:
            with archive, archive.open("word/document.xml") as fh:
                for _event, elem in ElementTree.iterparse(fh):
                    if elem.tag != f"{W}p":
                        continue
                    text = "".join(t.text or "" for t in elem.iter(f"{W}t")).strip()
                    style_el = elem.find(f"{W}pPr/{W}pStyle")
                    style = (style_el.get(f"{W}val") or "") if style_el is not None else ""
                    elem.clear()
                    if not text:
                        continue
                    level = _heading_level(style)
                    if level:
                        heads.set(level, text)
                    else:
                        yield Block(text, "para", heads.path)
        except ElementTree.ParseError as exc:
            raise LoadError(f"corrupt DOCX XML ({exc})") from exc

    return "", gen()


def _heading_level(style: str) -> int:
    s = style.lower().replace(" ", "")
    if s == "title":
        return 1
    m = re.fullmatch(r"heading(\d)", s)
    return int(m.group(1)) + 1 if m else 0
