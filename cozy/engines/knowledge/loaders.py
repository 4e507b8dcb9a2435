"""Loaders for line-based formats: Markdown, reStructuredText, plain text, source code.

Every loader turns lines into `Block`s: a paragraph, code block or symbol body with
the heading path in effect and its line range. They stream (one pass over the
lines, nothing but the current paragraph held), so huge files never load whole.
The rich formats (HTML, PDF, DOCX) live in `loaders_rich.py`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from cozy.engines.knowledge.code import symbol_pattern


@dataclass(slots=True)
class Block:
    text: str
    kind: str = "para"  # para | code | title
    headings: tuple[str, ...] = ()
    line_start: int | None = None
    line_end: int | None = None
    page: int | None = None
    symbol: str | None = None


class Paragraphs:
    """Collects consecutive lines into one block; flushed at structure boundaries."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.start = 0
        self.end = 0

    def add(self, lineno: int, line: str) -> None:
        if not self.lines:
            self.start = lineno
        self.lines.append(line)
        self.end = lineno

    def flush(
        self, headings: tuple[str, ...], kind: str = "para", **extra: object
    ) -> Iterator[Block]:
        if self.lines:
            text = "\n".join(self.lines).strip("\n")
            if text.strip():
                yield Block(text, kind, headings, self.start, self.end, **extra)  # type: ignore[arg-type]
        self.lines = []


class HeadingStack:
    def __init__(self) -> None:
        self.levels: list[tuple[int, str]] = []

    def set(self, level: int, title: str) -> None:
        while self.levels and self.levels[-1][0] >= level:
            self.levels.pop()
        self.levels.append((level, title.strip()))

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(t for _, t in self.levels)


ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
SETEXT_1 = re.compile(r"^ {0,3}=+[ \t]*$")
SETEXT_2 = re.compile(r"^ {0,3}-+[ \t]*$")


def markdown_blocks(lines: Iterable[str]) -> Iterator[Block]:
    """Markdown by structure: ATX/setext headings, fenced code, paragraphs, front matter."""
    heads = HeadingStack()
    para = Paragraphs()
    fence: str | None = None
    code = Paragraphs()
    front_matter = False
    for lineno, line in enumerate(lines, 1):
        if lineno == 1 and line.strip() == "---":
            front_matter = True
            continue
        if front_matter:
            if line.strip() in ("---", "..."):
                front_matter = False
            continue
        if fence is not None:
            code.add(lineno, line)
            stripped = line.strip()
            if stripped.startswith(fence) and stripped.strip(fence[0]) == "":
                fence = None
                yield from code.flush(heads.path, "code")
            continue
        m = FENCE.match(line)
        if m:
            yield from para.flush(heads.path)
            fence = m.group(1)
            code.add(lineno, line)
            continue
        m = ATX.match(line)
        if m:
            yield from para.flush(heads.path)
            heads.set(len(m.group(1)), m.group(2) or "")
            continue
        if para.lines and len(para.lines) == 1 and (SETEXT_1.match(line) or SETEXT_2.match(line)):
            title = para.lines[0]
            para.lines = []
            heads.set(1 if SETEXT_1.match(line) else 2, title)
            continue
        if not line.strip():
            yield from para.flush(heads.path)
            continue
        para.add(lineno, line)
    yield from para.flush(heads.path)
    yield from code.flush(heads.path, "code")  # an unclosed fence still counts


RST_ADORNMENT = re.compile(r"^([=\-`:'\"~^_*+#<>.])\1{2,}\s*$")


def rst_blocks(lines: Iterable[str]) -> Iterator[Block]:
    """reStructuredText: section titles (underline, optional overline) by style order."""
    heads = HeadingStack()
    para = Paragraphs()
    styles: list[tuple[str, bool]] = []
    overline: str | None = None
    for lineno, line in enumerate(lines, 1):
        m = RST_ADORNMENT.match(line)
        if m:
            char = m.group(1)
            if (
                para.lines
                and len(para.lines) == 1
                and len(line.rstrip()) >= len(para.lines[0].rstrip())
            ):
                title = para.lines[0].strip()
                para.lines = []
                style = (char, overline == char)
                if style not in styles:
                    styles.append(style)
                heads.set(styles.index(style) + 1, title)
                overline = None
                continue
            if not para.lines:
                overline = char  # an overline: the title follows
                continue
        if not line.strip():
            yield from para.flush(heads.path)
            continue
        para.add(lineno, line)
    yield from para.flush(heads.path)


def text_blocks(lines: Iterable[str]) -> Iterator[Block]:
    """Plain text: paragraphs separated by blank lines."""
    para = Paragraphs()
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            yield from para.flush(())
        else:
            para.add(lineno, line)
    yield from para.flush(())


CONTINUATION = (")", "]", "}", "@", "#", "//", "/*", "*", "--", "else", "elif", "except", "finally")


def code_blocks(lines: Iterable[str], language: str) -> Iterator[Block]:
    """Source code: one section per symbol (class, function...), nested by indentation."""
    pattern = symbol_pattern(language)
    stack: list[tuple[int, str]] = []
    para = Paragraphs()

    def path() -> tuple[str, ...]:
        return tuple(name for _, name in stack)

    for lineno, line in enumerate(lines, 1):
        m = pattern.match(line) if pattern is not None else None
        if m:
            name = next((g for g in reversed(m.groups()) if g), "")
            if name:
                yield from para.flush(path(), "code", symbol=".".join(path()) or None)
                indent = len(line) - len(line.lstrip())
                while stack and stack[-1][0] >= indent:
                    stack.pop()
                stack.append((indent, name))
        elif stack and line.strip() and not line.lstrip().startswith(CONTINUATION):
            indent = len(line) - len(line.lstrip())
            if indent <= stack[-1][0]:  # back at the symbol's level: its body ended
                yield from para.flush(path(), "code", symbol=".".join(path()) or None)
                while stack and stack[-1][0] >= indent:
                    stack.pop()
        if not line.strip() and len(para.lines) >= 40:
            yield from para.flush(path(), "code", symbol=".".join(path()) or None)
            continue
        para.add(lineno, line)
    yield from para.flush(path(), "code", symbol=".".join(path()) or None)
