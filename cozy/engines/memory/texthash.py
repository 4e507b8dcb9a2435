"""The normalised text and its hash: how the memory engine sees two facts as the same."""

from __future__ import annotations

import hashlib
import re

_NORM_RE = re.compile(r"[^\w]+", re.UNICODE)


def normalise(text: str) -> str:
    return " ".join(_NORM_RE.sub(" ", text.lower()).split())


def text_hash(text: str) -> str:
    """Hash of the normalised text: case, spacing and punctuation do not matter."""
    return hashlib.sha256(normalise(text).encode("utf-8")).hexdigest()
