"""Structured logs: JSON lines (server mode) or short text, secrets redacted.

Fields passed with `extra=` (request_id, session_id, personality_id, timings,
engines, ...) become top-level keys of the JSON record, as the brief's log shape.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message"}
_SECRET_KEYS = re.compile(r"(authorization|api[_-]?key|token|secret|password)", re.I)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._\-]+")
_SK = re.compile(r"\b(sk-[A-Za-z0-9_\-]{6})[A-Za-z0-9_\-]+")


@functools.lru_cache(maxsize=1024)
def _secret_key(key: str) -> bool:
    return _SECRET_KEYS.search(key) is not None


def redact(value: Any, key: str = "") -> Any:
    if key and _secret_key(key):
        return "***"
    if isinstance(value, str):
        if "Bearer" not in value and "sk-" not in value:  # the common case, without regexes
            return value
        return _SK.sub(r"\1***", _BEARER.sub(r"\1***", value))
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                out[key] = redact(value, key)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = {
            k: v for k, v in record.__dict__.items() if k not in _RESERVED and not k.startswith("_")
        }
        tail = " ".join(f"{k}={redact(v, k)}" for k, v in extras.items())
        line = f"{record.levelname.lower()} {record.name}: {redact(record.getMessage())}"
        return f"{line} {tail}".rstrip()


def setup_logging(level: str = "WARNING", fmt: str = "text") -> None:
    root = logging.getLogger("cozy")
    root.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False


def setup_server_logging(level: str = "INFO", fmt: str = "json") -> None:
    """`cozy serve`: cozy's loggers, uvicorn's and Python warnings through one handler,
    so every line is JSON (with `--workers N` each worker process calls this too)."""
    setup_logging(level, fmt)
    handler = logging.getLogger("cozy").handlers[0]
    logging.captureWarnings(True)
    for name in ("uvicorn", "uvicorn.error", "py.warnings"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper() if name != "py.warnings" else "WARNING")
        logger.propagate = False
