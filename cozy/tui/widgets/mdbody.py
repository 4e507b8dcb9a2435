"""MarkdownBody: an answer's Markdown as one widget of cached lines.

Textual's Markdown widget mounts a child widget per block (paragraph, fence, list
item...), and every mount lays the whole screen out again; over a streamed answer
and a long session that is hundreds of widgets walked on every layout, while the
user types. This widget is a single leaf: each finished block is rendered once (Rich
Markdown, styled from the Textual theme) into lines that are kept until the width or
the theme changes, and `render_line` just returns them. Textual has no leaf widget
that renders Markdown from cached lines, hence this one.

While an answer streams (`feed`), the block still arriving is plain text after the
finished blocks, and the widget's height is reserved in steps of `step` rows: most
updates only repaint it, the chat is laid out again only when the answer outgrows the
rows held for it. `finish` sets the height back to the content's.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.style import Style
    from textual.geometry import Size


def safe_cut(text: str) -> int:
    """Length of the prefix made of complete Markdown blocks (ends at a blank line
    that is not inside a code fence); 0 when no block is complete yet."""
    cut = 0
    fences = 0
    pos = 0
    for line in text.splitlines(keepends=True):
        pos += len(line)
        if line.lstrip().startswith("```"):
            fences += 1
        elif not line.strip() and fences % 2 == 0 and line.endswith("\n"):
            cut = pos
    return cut


@functools.cache
def _markdown_class() -> type[Any]:
    """Rich's Markdown with headings at the left margin and code on a shaded
    background (imported on first use)."""
    from rich.markdown import CodeBlock, Heading, Markdown
    from rich.syntax import Syntax

    class LeftHeading(Heading):
        LEVEL_ALIGN = dict.fromkeys(("h1", "h2", "h3", "h4", "h5", "h6"), "left")

    class ShadedCode(CodeBlock):
        background: str | None = None

        @classmethod
        def create(cls, markdown: Markdown, token: Any) -> CodeBlock:
            block = cls((token.info or "").partition(" ")[0] or "text", markdown.code_theme)
            block.background = getattr(markdown, "code_background", None)
            return block

        def __rich_console__(self, console: Any, options: Any) -> Any:
            code = str(self.text).rstrip()
            yield Syntax(
                code,
                self.lexer_name,
                theme=self.theme,
                word_wrap=True,
                padding=(0, 1),
                background_color=self.background,
            )

    class ChatMarkdown(Markdown):
        elements = {  # noqa: RUF012
            **Markdown.elements,
            "heading_open": LeftHeading,
            "fence": ShadedCode,
            "code_block": ShadedCode,
        }

        def __init__(self, source: str, dark: bool, code_background: str | None) -> None:
            super().__init__(source, code_theme="ansi_dark" if dark else "ansi_light")
            self.code_background = code_background

    return ChatMarkdown


def _markdown(source: str, dark: bool, code_background: str | None) -> RenderableType:
    markdown: RenderableType = _markdown_class()(source, dark, code_background)
    return markdown


def warm_up() -> None:
    """Import and exercise the Markdown renderer once (at start-up, not mid-answer)."""
    import io

    from rich.console import Console

    sample = "# t\n\n**b** `c`\n\n- i\n\n```python\nx = [1]\n```\n"
    Console(file=io.StringIO(), width=40).print(_markdown(sample, True, "#202020"))


def _theme_styles(theme: Any) -> dict[str, str]:
    """Rich Markdown styles taken from the Textual theme (so the answer follows it)."""
    primary = theme.primary
    accent = theme.accent or theme.primary
    secondary = theme.secondary or theme.primary
    return {
        "markdown.h1": f"bold {primary}",
        "markdown.h2": f"bold {primary}",
        "markdown.h3": f"bold {secondary}",
        "markdown.h4": f"italic {secondary}",
        "markdown.h5": "italic",
        "markdown.h6": "dim italic",
        "markdown.code": f"bold {accent}",
        "markdown.code_block": "none",
        "markdown.link": f"underline {primary}",
        "markdown.link_url": f"underline {secondary}",
        "markdown.block_quote": "italic",
        "markdown.item.bullet": f"bold {accent}",
        "markdown.item.number": f"bold {accent}",
        "markdown.hr": "dim",
        "markdown.table.border": "dim",
    }


_themes: dict[str, Any] = {}  # Textual theme name -> Rich theme


def _rich_theme(theme: Any) -> Any:
    from rich.theme import Theme

    if theme.name not in _themes:
        _themes[theme.name] = Theme(_theme_styles(theme))
    return _themes[theme.name]


class NoSecondLayout(Widget):
    """After a layout, Textual sets each resized widget's virtual size as a reactive
    that asks for another full layout, which changes nothing for these widgets (their
    children were arranged in the same pass, anchoring and scrollbars are updated
    without it); skipping it halves the layouts while an answer grows. There is no
    public switch for this, so `_size_updated` is overridden (Textual 8 signature)."""

    def _size_updated(
        self, size: Size, virtual_size: Size, container_size: Size, layout: bool = True
    ) -> bool:
        return super()._size_updated(size, virtual_size, container_size, layout=False)


class MarkdownBody(NoSecondLayout):
    """Markdown text as cached lines; streams block by block (see the module doc)."""

    DEFAULT_CSS = "MarkdownBody { height: auto; }"

    def __init__(self, text: str = "", *, step: int = 8, classes: str | None = None) -> None:
        super().__init__(classes=classes)
        self.blocks: list[str] = [text] if text.strip() else []
        self.tail = ""  # the block still arriving, shown as plain text
        self.step = step
        self.streaming = False
        self.layouts = 0  # updates that laid the chat out again
        self.updates = 0  # updates in all
        self._width = 0
        self._key: tuple[Any, ...] = ()  # what the cached lines were rendered for
        self._rendered: list[list[Strip]] = []  # each block's lines at _width
        self._body: list[Strip] = []  # the finished blocks' lines, blank line between
        self._tail: list[Strip] = []
        self._reserved = 0

    @property
    def rows(self) -> int:
        """Lines the content takes at the current width."""
        return self._lines()

    @property
    def reserved(self) -> int:
        """Rows held while streaming (0 when not streaming)."""
        return self._reserved

    @property
    def source(self) -> str:
        return "\n\n".join(self.blocks + ([self.tail] if self.tail else []))

    # --- rendering (cached per width) ------------------------------------------
    def _base(self) -> Style:
        return self.visual_style.rich_style

    def _to_strips(self, renderable: RenderableType, width: int) -> list[Strip]:
        console = self.app.console
        options = self.app.console_options.update(width=width, highlight=False, height=None)
        with console.use_theme(_rich_theme(self.app.current_theme)):
            lines = console.render_lines(renderable, options, style=self._base(), pad=True)
        return [Strip(line, width) for line in lines]

    def _render_block(self, source: str, width: int) -> list[Strip]:
        from textual.color import Color

        theme = self.app.current_theme
        dark = theme.dark
        background = self.visual_style.background or Color.parse(
            theme.background or ("#000000" if dark else "#ffffff")
        )
        shade = background.lighten(0.06) if dark else background.darken(0.06)
        return self._to_strips(_markdown(source, dark, shade.hex6), width)

    def _render_tail(self, width: int) -> None:
        from rich.text import Text

        self._tail = self._to_strips(Text(self.tail), width) if self.tail and width > 0 else []

    def _add_rendered(self, lines: list[Strip], width: int) -> None:
        if self._rendered:
            self._body.append(Strip.blank(width, self._base()))
        self._rendered.append(lines)
        self._body.extend(lines)

    def _ensure(self, width: int) -> None:
        """Render everything for `width` (and the current colours) unless done already."""
        if width <= 0:
            return
        key = (width, self._base(), self.app.current_theme.name)
        if key == self._key:
            return
        self._key, self._width = key, width
        self._rendered, self._body = [], []
        for block in self.blocks:
            self._add_rendered(self._render_block(block, width), width)
        self._render_tail(width)

    def _lines(self) -> int:
        gap = 1 if self._body and self._tail else 0
        return len(self._body) + gap + len(self._tail)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        self._ensure(width)
        return self._lines()

    def render_line(self, y: int) -> Strip:
        width = self.content_size.width
        self._ensure(width)
        if y < len(self._body):
            return self._body[y]
        y -= len(self._body) + (1 if self._body else 0)
        if 0 <= y < len(self._tail):
            return self._tail[y]
        return Strip.blank(width, self._base())

    # --- streaming -------------------------------------------------------------
    def feed(self, done: str, tail: str) -> None:
        """Add a finished part (complete blocks) and show the block still arriving."""
        self.streaming = True
        self.updates += 1
        width = self._width
        first = len(self._body)  # the first line that changes: the tail's or a new block's
        if done.strip():
            self.blocks.append(done.strip("\n"))
            if width:
                self._add_rendered(self._render_block(self.blocks[-1], width), width)
        self.tail = tail.rstrip("\n")
        self._render_tail(width)
        self._hold_rows(first=first)

    def _hold_rows(self, exact: bool = False, first: int = 0) -> None:
        rows = self._lines()
        need = max(self.step, -(-rows // self.step) * self.step)
        if need > self._reserved or (exact and need != self._reserved):
            self._reserved = need
            self.layouts += 1
            self.styles.height = need  # lays the chat out again
        elif self._width:  # repaint from the first changed line down, no relayout
            self.refresh(Region(0, first, self._width, max(1, need - first)))

    def on_resize(self) -> None:
        if self.streaming:
            self._ensure(self.content_size.width)
            self._hold_rows(exact=True)

    def finish(self) -> None:
        """The answer ended: what is left becomes a block; height back to the content's."""
        if self.tail.strip():
            self.blocks.append(self.tail)
            if self._width:
                self._add_rendered(self._render_block(self.tail, self._width), self._width)
        self.tail, self._tail = "", []
        self.streaming = False
        self._reserved = 0
        self.styles.height = "auto"
        self.refresh(layout=True)
