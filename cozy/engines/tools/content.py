"""Turn an MCP CallToolResult into text for the model, and the images / audio it holds.

Text blocks are kept as they are. An image or audio block (or an embedded resource whose
blob is an image) becomes a `MediaPart` beside the text, named in the text where it
stood (`[image 1: image/png, 1234 bytes]`), so the turn can pass it to a model that sees
images (core/toolmedia.py). What cannot be passed on (an image type models do not
read, one over MAX_MEDIA_BYTES, more than MAX_MEDIA per result) stays a placeholder
that says why.
"""

from __future__ import annotations

from typing import Any

from cozy.core.types import MediaPart, b64_size
from cozy.engines.tools.sandbox import to_text

# the image types OpenAI-style APIs and Ollama's vision models read
IMAGE_MIMES = ("image/png", "image/jpeg", "image/gif", "image/webp")
MAX_MEDIA_BYTES = 20 * 1024 * 1024  # as an image attached with `cozy run -a`
MAX_MEDIA = 8  # per result: a tool returning a gallery does not flood the prompt


class _Parts:
    def __init__(self) -> None:
        self.media: list[MediaPart] = []

    def binary(self, kind: str, mime: str, data: str, where: str = "") -> str:
        """The block's place in the text; kept as media when it can be passed on."""
        size = b64_size(data)
        label = f"{kind}{where}: {mime or 'unknown type'}, {size} bytes"
        if kind == "image" and mime not in IMAGE_MIMES:
            return f"[{label}, not shown: models read {', '.join(IMAGE_MIMES)}]"
        if size > MAX_MEDIA_BYTES:
            return f"[{label}, not shown: over {MAX_MEDIA_BYTES // 2**20} MB]"
        if len(self.media) >= MAX_MEDIA:
            return f"[{label}, not shown: only {MAX_MEDIA} images or clips per result]"
        part = MediaPart("image" if kind == "image" else "audio", mime, data)
        self.media.append(part)
        return part.describe(sum(1 for m in self.media if m.kind == part.kind))

    def block(self, block: Any) -> str:
        kind = getattr(block, "type", None)
        if kind == "text":
            return str(block.text)
        if kind in ("image", "audio"):
            mime = getattr(block, "mime_type", "") or ""
            return self.binary(str(kind), mime, getattr(block, "data", "") or "")
        if kind == "resource_link":
            label = getattr(block, "title", None) or getattr(block, "name", "") or "resource"
            mime = getattr(block, "mime_type", None)
            desc = getattr(block, "description", None)
            text = f"[resource link: {label} <{block.uri}>{f' ({mime})' if mime else ''}]"
            return f"{text} {desc}" if desc else text
        if kind == "resource":
            res = block.resource
            mime = getattr(res, "mime_type", None) or "unknown type"
            if getattr(res, "text", None) is not None:
                return f"[resource {res.uri} ({mime})]\n{res.text}"
            blob = getattr(res, "blob", "") or ""
            if mime.startswith("image/"):
                return self.binary("image", mime, blob, f" (resource {res.uri})")
            return f"[binary resource {res.uri}: {mime}, {b64_size(blob)} bytes, not shown]"
        dump = getattr(block, "model_dump", None)
        return to_text(dump(mode="json", by_alias=True, exclude_none=True) if dump else block)


def result_parts(result: Any) -> tuple[str, list[MediaPart]]:
    """The result as text (media named where they stood) and its images / audio."""
    parts = _Parts()
    texts = [parts.block(b) for b in getattr(result, "content", None) or []]
    structured = getattr(result, "structured_content", None)
    if not texts and structured is not None:
        texts.append(to_text(structured))
    return "\n".join(texts), parts.media
