"""What MCP servers log (notifications/message), kept bounded and readable later.

Each server gets a ring of its last entries in memory and a file under
`COZY_HOME/logs/mcp/<server>.jsonl` capped at MAX_FILE_BYTES (the older half is
dropped when it grows past that), so `cozy tools logs NAME` can show what a server
logged while the TUI, `cozy serve` or an earlier command ran it. A flooding server
costs at most the ring and the file cap; each message is cut to MAX_TEXT characters.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cozy.core.types import LOG_LEVELS as LEVELS
from cozy.core.types import log_at_least as at_least

MAX_ENTRIES = 500
MAX_TEXT = 2000
MAX_FILE_BYTES = 256 * 1024

__all__ = [
    "LEVELS",
    "MAX_ENTRIES",
    "LogEntry",
    "ServerLog",
    "at_least",
    "read_logs",
    "set_log_level",
]


@dataclass(slots=True)
class LogEntry:
    at: float
    server: str
    level: str
    logger: str | None
    text: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_log_level(value: Any) -> bool:
    return isinstance(value, str) and value in LEVELS


def log_dir(home: Path | str | None) -> Path | None:
    return Path(home) / "logs" / "mcp" if home else None


class ServerLog:
    """One server's log: a ring in memory, mirrored to a capped JSON-lines file."""

    def __init__(self, server: str, directory: Path | None) -> None:
        self.server = server
        self.entries: deque[LogEntry] = deque(maxlen=MAX_ENTRIES)
        self.path = directory / f"{server}.jsonl" if directory else None
        self.total = 0

    def add(self, level: str, logger: str | None, data: Any) -> LogEntry:
        text = data if isinstance(data, str) else json.dumps(data, default=str)
        if len(text) > MAX_TEXT:
            text = text[:MAX_TEXT] + f" [cut: {len(text)} characters]"
        entry = LogEntry(time.time(), self.server, str(level), logger, text)
        self.entries.append(entry)
        self.total += 1
        if self.path is not None:
            # a log line must never break a call: a full disk or a read-only home
            # only loses the file copy
            with contextlib.suppress(OSError):
                self._append(json.dumps(entry.to_dict()) + "\n")
        return entry

    def _append(self, line: str) -> None:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(line)
            size = fh.tell()
        if size > MAX_FILE_BYTES:
            keep = self.path.read_bytes()[-(MAX_FILE_BYTES // 2) :]
            keep = keep[keep.find(b"\n") + 1 :]
            tmp = self.path.with_suffix(".tmp")
            tmp.write_bytes(keep)
            os.replace(tmp, self.path)


def read_logs(
    directory: Path | None, servers: Iterable[str], *, limit: int = 50, level: str = "debug"
) -> list[dict[str, Any]]:
    """The newest `limit` entries at `level` or above from the servers' files, oldest
    first."""
    rows: list[dict[str, Any]] = []
    if directory is None:
        return rows
    for server in servers:
        path = directory / f"{server}.jsonl"
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                row = json.loads(line)
                if isinstance(row, dict) and at_least(str(row.get("level")), level):
                    rows.append(row)
    rows.sort(key=lambda r: float(r.get("at") or 0))
    return rows[-limit:] if limit > 0 else rows


async def set_log_level(session: Any, level: str, within: float, log: ServerLog) -> None:
    """logging/setLevel for a server that declared logging; one that refuses it keeps
    its own level (noted in its log, not fatal)."""
    import asyncio
    import warnings

    from mcp.shared.exceptions import MCPDeprecationWarning

    from cozy.engines.tools.mcp_common import describe

    caps = getattr(session, "server_capabilities", None)
    if caps is None or getattr(caps, "logging", None) is None:
        return
    try:
        # deprecated by the 2026-07-28 spec (SEP-2577) but unchanged on the wire and
        # what today's servers (server-everything included) act on
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            async with asyncio.timeout(min(within or 10.0, 10.0)):
                await session.set_logging_level(level)
    except Exception as exc:
        log.add("warning", "cozy", f"logging/setLevel refused: {describe(exc)}")
