"""Run an MCP stdio server and log every JSON-RPC line in both directions.

python tap.py LOGFILE command args...

The log gets one line per message, "> " for client to server and "< " for server to
client, so a test can check what a third-party server was sent and what it answered
(e.g. that a cancelled request got no response).
"""

from __future__ import annotations

import subprocess
import sys
import threading
from typing import IO


def pump(src: IO[bytes], dst: IO[bytes], log: IO[str], mark: str, lock: threading.Lock) -> None:
    for line in iter(src.readline, b""):
        with lock:
            log.write(mark + line.decode("utf-8", "replace").rstrip("\n") + "\n")
            log.flush()
        dst.write(line)
        dst.flush()
    dst.close()


def main() -> int:
    log_path, cmd = sys.argv[1], sys.argv[2:]
    child = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdin is not None and child.stdout is not None
    lock = threading.Lock()
    with open(log_path, "a", encoding="utf-8") as log:
        up = threading.Thread(
            target=pump, args=(sys.stdin.buffer, child.stdin, log, "> ", lock), daemon=True
        )
        up.start()
        pump(child.stdout, sys.stdout.buffer, log, "< ", lock)
        return child.wait()


if __name__ == "__main__":
    sys.exit(main())
