"""Reading files safely: binary detection, encoding detection, streamed lines, hashing.

Nothing here loads a whole file: hashing and line reading stream in blocks, and
the encoding is guessed from a sample (UTF-8 first, then charset-normalizer).
"""

from __future__ import annotations

import codecs
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SAMPLE_BYTES = 64 * 1024
READ_BLOCK = 1024 * 1024

# Magic numbers of common binary formats that are never text.
BINARY_MAGIC = (
    b"\x7fELF",
    b"MZ",
    b"\x89PNG",
    b"\xff\xd8\xff",
    b"GIF8",
    b"PK\x03\x04",
    b"\x1f\x8b",
    b"BZh",
    b"\xfd7zXZ",
    b"7z\xbc\xaf",
    b"RIFF",
    b"OggS",
    b"ID3",
    b"fLaC",
    b"\x00\x00\x00",
    b"SQLite format 3",
    b"\xca\xfe\xba\xbe",
)


class LoadError(Exception):
    """A file cannot be read as a document; `reason` is shown to the user."""

    def __init__(self, reason: str, *, skipped: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.skipped = skipped  # True: not an error (binary, empty), just not indexed


@dataclass(slots=True, frozen=True)
class TextSource:
    path: Path
    encoding: str


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(READ_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def looks_binary(sample: bytes) -> str | None:
    """A reason when the sample is binary, else None."""
    if not sample:
        return None
    for magic in BINARY_MAGIC:
        if sample.startswith(magic):
            return "binary file (not text)"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return None  # UTF-16 text has NULs by design
    if b"\x00" in sample[:8192]:
        return "binary file (contains NUL bytes)"
    return None


def detect_encoding(sample: bytes) -> str:
    """The encoding to read a text file with; raises LoadError for binaries."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    reason = looks_binary(sample)
    if reason:
        raise LoadError(reason, skipped=True)
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(sample).best()
    if best is None or not best.encoding:
        raise LoadError("binary file (no text encoding fits)", skipped=True)
    return str(best.encoding)


def open_text(path: Path) -> TextSource:
    with path.open("rb") as fh:
        sample = fh.read(SAMPLE_BYTES)
    return TextSource(path, detect_encoding(sample))


def iter_lines(source: TextSource) -> Iterator[str]:
    """Lines without their newline, streamed; undecodable bytes become U+FFFD."""
    with source.path.open("r", encoding=source.encoding, errors="replace", newline=None) as fh:
        for line in fh:
            yield line.rstrip("\n")


def text_lines(text: str) -> Iterator[str]:
    yield from text.splitlines()
