"""Which AI provider answers when engines.yaml says `provider: auto`, and why.

In order: an explicit provider in engines.yaml; OpenAI-compatible when OPENAI_API_KEY or
OPENAI_BASE_URL is set; Ollama when it answers a short probe (`GET /api/version`, cached
for a while in the process); else the embedded model (`local`). The reason is shown by
`cozy run --json` (`provider`), the TUI status bar and `cozy doctor`.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

PROBE_TIMEOUT = 0.3  # seconds: a local Ollama answers in ~1 ms; a remote one in well under
PROBE_TTL = 30.0  # seconds a probe result is trusted (a server started later is found)


EXPLICIT = "engines.yaml sets ai.provider:"
BY_NAME = "asked for by name"


@dataclass(frozen=True, slots=True)
class Choice:
    provider: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.provider, "reason": self.reason}


def automatic(reason: str) -> bool:
    """True when `reason` is the `auto` choice's (not engines.yaml's, not a name asked for)."""
    return bool(reason) and not reason.startswith((EXPLICIT, BY_NAME))


_probes: dict[str, tuple[float, bool]] = {}
_lock = threading.Lock()


def ollama_answers(host: str, timeout: float = PROBE_TIMEOUT) -> bool:
    """True when an Ollama server answers `GET /api/version` at `host` (cached briefly)."""
    now = time.monotonic()
    with _lock:
        seen = _probes.get(host)
    if seen is not None and now - seen[0] < PROBE_TTL:
        return seen[1]
    ok = _probe(host, timeout)
    with _lock:
        _probes[host] = (now, ok)
    return ok


def probe_cached(host: str) -> bool:
    with _lock:
        seen = _probes.get(host)
    return seen is not None and time.monotonic() - seen[0] < PROBE_TTL


def _probe(host: str, timeout: float) -> bool:
    url = urlsplit(host)
    conn_cls = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
    conn = conn_cls(url.hostname or "localhost", url.port, timeout=timeout)
    try:
        conn.request("GET", "/api/version")
        resp = conn.getresponse()
        if resp.status != 200:
            return False
        body = json.loads(resp.read(4096) or b"{}")
        return isinstance(body, dict) and "version" in body
    except (OSError, ValueError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def choose(configured: str, ollama_host: str) -> Choice:
    """The provider for `configured` (engines.yaml `ai.provider`), with the reason."""
    if configured != "auto":
        return Choice(configured, f"{EXPLICIT} {configured}")
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        if os.environ.get(var):
            return Choice("openai", f"{var} is set")
    if ollama_answers(ollama_host):
        return Choice("ollama", f"Ollama answers at {ollama_host}")
    return Choice("local", f"no OpenAI key or URL, no Ollama at {ollama_host}: embedded model")


def forget_probes() -> None:
    """Drop cached probe results (tests; a face that wants a fresh look)."""
    with _lock:
        _probes.clear()
