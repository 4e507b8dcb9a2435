"""Turn an MCP CallToolResult into text for the model (non-text content summarised)."""

from __future__ import annotations

from typing import Any

from cozy.engines.tools.sandbox import to_text


def _b64_size(data: str) -> int:
    return len(data) * 3 // 4 - data[-2:].count("=") if data else 0


def _block_text(block: Any) -> str:
    kind = getattr(block, "type", None)
    if kind == "text":
        return str(block.text)
    if kind in ("image", "audio"):
        mime = getattr(block, "mime_type", "") or "unknown type"
        return f"[{kind}: {mime}, {_b64_size(getattr(block, 'data', '') or '')} bytes, not shown]"
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
        size = _b64_size(getattr(res, "blob", "") or "")
        return f"[binary resource {res.uri}: {mime}, {size} bytes, not shown]"
    dump = getattr(block, "model_dump", None)
    return to_text(dump(mode="json", by_alias=True, exclude_none=True) if dump else block)


def result_text(result: Any) -> str:
    parts = [_block_text(b) for b in getattr(result, "content", None) or []]
    structured = getattr(result, "structured_content", None)
    if not parts and structured is not None:
        parts.append(to_text(structured))
    return "\n".join(parts)
