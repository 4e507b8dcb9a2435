"""What a turn reads besides its prompt: fragments and attachments.

A *fragment* is text placed in the prompt (a file, every text file of a directory, stdin
or a web page), labelled with where it came from. An *attachment* is a fragment too,
unless it is an image: images travel beside the text as image parts, for models that
can see them. Kept below the faces so the server can accept the same inputs.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from cozy.core.errors import UsageError
from cozy.core.types import ImagePart
from cozy.storage.attach import Fragment, assemble, fenced, listed

__all__ = [
    "Fragment",
    "Inputs",
    "assemble",
    "at_files",
    "fenced",
    "file_part",
    "gather",
    "image_from_url",
]

MAX_FILE_BYTES = int(os.environ.get("COZY_MAX_FRAGMENT_BYTES", str(2 * 1024 * 1024)))
MAX_DIR_FILES = 200
MAX_IMAGE_BYTES = 20 * 1024 * 1024
URL_TIMEOUT = 20.0
# never read from a directory fragment: version control, environments, caches
SKIP_DIRS = {".git", ".hg", ".svn", ".venv", "venv", "node_modules", "__pycache__", ".tox"}

# file signatures: what the bytes are, whatever the name says
_IMAGE_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


@dataclass(slots=True)
class Inputs:
    """Everything `-f` and `-a` brought in, ready for a `ChatRequest`."""

    fragments: list[Fragment]
    images: list[ImagePart]

    def prompt(self, text: str) -> str:
        """The fragments, each fenced and labelled, then the user's own words."""
        return assemble(self.fragments, text)

    def metadata(self) -> dict[str, Any] | None:
        """What is kept on the stored message: sources and hashes, not the bytes."""
        if not self.fragments and not self.images:
            return None
        return {
            "fragments": listed(self.fragments),
            "images": [
                {
                    "source": i.source,
                    "mime": i.mime,
                    # of the file's bytes, as `sha256sum FILE` prints it
                    "sha256": hashlib.sha256(base64.b64decode(i.data)).hexdigest(),
                }
                for i in self.images
            ],
        }


def gather(fragments: list[str], attachments: list[str], stdin: BinaryIO | None = None) -> Inputs:
    """Load `-f` and `-a` references in order; `-` reads `stdin` (once)."""
    out = Inputs([], [])
    for ref in fragments:
        for item in _load(ref, stdin, images=False):
            assert isinstance(item, Fragment)
            out.fragments.append(item)
    for ref in attachments:
        for item in _load(ref, stdin, images=True):
            if isinstance(item, ImagePart):
                out.images.append(item)
            else:
                out.fragments.append(item)
    return out


_AT = re.compile(r"(?<!\S)@(\S+)")


def at_files(text: str) -> tuple[str, list[str]]:
    """`@path` naming an existing file or directory is attached; the text keeps the bare
    path, so the question still reads naturally (`explain @app.py briefly`). Returns
    the text and the paths, in order. A word that names no file is left as it is."""
    found: list[str] = []

    def take(m: re.Match[str]) -> str:
        ref = m[1]
        for path in (ref, ref.rstrip(".,;:!?)")):  # `@app.py?` at the end of a question
            if path and Path(path).expanduser().exists():
                found.append(path)
                return path + ref[len(path) :]
        return m[0]

    return _AT.sub(take, text), found


def file_part(filename: str, data: str) -> Fragment:
    """An OpenAI `file` content part's data (a base64 data URL, or bare base64) read as
    a fragment labelled with its file name: text, code, PDF or HTML (the server's way
    in for files; images come as `image_url` parts)."""
    name = filename.strip() or "file"
    head, sep, body = data.partition(",")
    if data.startswith("data:") and sep:
        if not head.endswith(";base64"):
            raise UsageError(f"file {name}: the data URL is not base64")
        data = body
    try:
        raw = base64.b64decode(data, validate=True)
    except ValueError:
        raise UsageError(
            f"file {name}: file_data is not valid base64",
            hint="send the file's bytes as data:<mime>;base64,<data>",
        ) from None
    if image_type(raw) is not None:
        raise UsageError(
            f"file {name} is an image",
            hint="send images as image_url parts (data:image/png;base64,...)",
        )
    (item,) = _item(name, raw, images=False)
    assert isinstance(item, Fragment)
    return item


def image_from_url(url: str) -> ImagePart:
    """An OpenAI `image_url` part's data URL as an image (the server's way in)."""
    head, sep, data = url.partition(",")
    if not url.startswith("data:") or not sep or not head.endswith(";base64"):
        raise UsageError(
            "image_url must be a base64 data URL (data:image/png;base64,...)",
            hint="send the image's bytes inline; cozy does not fetch image URLs for you",
        )
    mime = head[5:].removesuffix(";base64")
    try:
        raw = base64.b64decode(data, validate=True)
    except ValueError:
        raise UsageError("image_url: the data is not valid base64") from None
    if image_type(raw) is None:
        raise UsageError(f"image_url: not a PNG, JPEG, GIF or WebP image ({mime})")
    if len(raw) > MAX_IMAGE_BYTES:
        raise UsageError(f"image_url: larger than {MAX_IMAGE_BYTES // 2**20} MB")
    return ImagePart(image_type(raw) or mime, data, "image_url")


def _load(ref: str, stdin: BinaryIO | None, *, images: bool) -> Iterator[Fragment | ImagePart]:
    if ref == "-":
        if stdin is None:
            raise UsageError("`-` reads stdin, but stdin is a terminal", hint="pipe text in")
        yield from _item("stdin", stdin.read(MAX_FILE_BYTES + 1), images=images)
    elif ref.startswith(("http://", "https://")):
        yield from _item(ref, _fetch(ref), images=images)
    else:
        path = Path(ref).expanduser()
        if path.is_dir():
            yield from _directory(path)
        elif path.is_file():
            limit = MAX_IMAGE_BYTES if images else MAX_FILE_BYTES
            with path.open("rb") as fh:
                yield from _item(ref, fh.read(limit + 1), images=images)
        else:
            raise UsageError(
                f"no such file or directory: {ref}",
                hint="give a path that exists, a directory, an http(s) URL, or - for stdin",
            )


def _directory(root: Path) -> Iterator[Fragment]:
    """Every text file under `root` (sorted; binaries and hidden or tool dirs skipped)."""
    count = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            with path.open("rb") as fh:
                data = fh.read(MAX_FILE_BYTES + 1)
            if len(data) > MAX_FILE_BYTES or _binary(data):
                continue  # a directory brings its text files; big or binary ones stay out
            count += 1
            if count > MAX_DIR_FILES:
                raise UsageError(
                    f"{root} has more than {MAX_DIR_FILES} text files",
                    hint="point -f at a smaller directory, or add it with `cozy knowledge add`",
                )
            yield Fragment(str(path), _decode(data))


def _item(source: str, data: bytes, *, images: bool) -> Iterator[Fragment | ImagePart]:
    mime = image_type(data)
    if mime is not None:
        if not images:
            raise UsageError(
                f"{source} is an image ({mime}); fragments are text",
                hint=f"attach it with `-a {source}` (for a model that can see images)",
            )
        if len(data) > MAX_IMAGE_BYTES:
            raise UsageError(f"{source} is larger than {MAX_IMAGE_BYTES // 2**20} MB")
        yield ImagePart(mime, base64.b64encode(data).decode("ascii"), source)
        return
    if len(data) > MAX_FILE_BYTES:
        raise UsageError(
            f"{source} is larger than {MAX_FILE_BYTES:,} bytes",
            hint="set COZY_MAX_FRAGMENT_BYTES, or add it with `cozy knowledge add` and ask "
            "about it",
        )
    if data.startswith(b"%PDF-"):
        yield Fragment(source, _pdf_text(source, data))
    elif _binary(data):
        raise UsageError(
            f"{source} is neither text nor an image cozy can send",
            hint="attach text, code, PDF, HTML, or PNG/JPEG/GIF/WebP images",
        )
    elif source.lower().endswith((".html", ".htm")) or _looks_html(data):
        yield Fragment(source, html_text(_decode(data)))
    else:
        yield Fragment(source, _decode(data))


def image_type(data: bytes) -> str | None:
    for magic, mime in _IMAGE_MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _binary(data: bytes) -> bool:
    return b"\x00" in data[:8192]


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:  # other encodings: let charset-normalizer guess
        from charset_normalizer import from_bytes

        best = from_bytes(data).best()
        return str(best) if best is not None else data.decode("utf-8", errors="replace")


def _looks_html(data: bytes) -> bool:
    head = data[:512].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html"))


def _pdf_text(source: str, data: bytes) -> str:
    import io

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        text = "\n\n".join((page.extract_text() or "").strip() for page in reader.pages)
    except PdfReadError as exc:
        raise UsageError(f"{source}: not a readable PDF ({exc})") from None
    if not text.strip():
        raise UsageError(f"{source}: the PDF has no text layer (a scan?)")
    return text


def html_text(html: str) -> str:
    """The visible text of a page (scripts, styles and markup dropped)."""
    from html.parser import HTMLParser  # only pages need it

    skip_tags = ("script", "style", "noscript", "template")
    breaks = ("p", "br", "div", "li", "tr", "h1", "h2", "h3", "h4", "pre")

    class Text(HTMLParser):
        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.parts: list[str] = []
            self.skip = 0

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag in skip_tags:
                self.skip += 1
            elif tag in breaks:
                self.parts.append("\n")

        def handle_endtag(self, tag: str) -> None:
            if tag in skip_tags and self.skip:
                self.skip -= 1

        def handle_data(self, data: str) -> None:
            if not self.skip:
                self.parts.append(data)

    parser = Text()
    parser.feed(html)
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return "\n".join(line for line in lines if line)


def _fetch(url: str) -> bytes:
    """GET `url`, at most MAX_IMAGE_BYTES (a page or an image), within URL_TIMEOUT."""
    import httpx

    limit = MAX_IMAGE_BYTES
    try:
        with (
            httpx.Client(timeout=URL_TIMEOUT, follow_redirects=True) as client,
            client.stream("GET", url) as resp,
        ):
            if resp.status_code >= 400:
                raise UsageError(f"{url}: the server answered HTTP {resp.status_code}")
            body = bytearray()
            for chunk in resp.iter_bytes():
                body += chunk
                if len(body) > limit:
                    raise UsageError(
                        f"{url} is larger than {limit // 2**20} MB",
                        hint="download the part you need and pass the file",
                    )
            return bytes(body)
    except httpx.HTTPError as exc:
        raise UsageError(
            f"could not fetch {url}: {exc}", hint="check the URL, or download it and pass the file"
        ) from None
