"""Is the data directory writable right now? One probe and one explanation for a full
or read-only disk, shared by `/ready`, `cozy doctor` and the store's error messages.

A real write is the only honest test: free space can be reserved for root, a
read-only bind mount or a quota can fail writes that `statvfs` and `os.access` allow.
The probe writes and fsyncs a small file, then removes it.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import uuid
from pathlib import Path

from cozy.core.errors import StorageError, StorageFull, StorageReadOnly

MIN_FREE = 1024 * 1024  # below this the next SQLite checkpoint or cache write may fail
PROBE = b"\0" * 4096


def free_bytes(path: Path) -> int | None:
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def _full(directory: Path) -> StorageFull:
    free = free_bytes(directory)
    left = f" ({free // 1024} KiB free)" if free is not None else ""
    return StorageFull(
        f"the disk holding {directory} is full{left}: nothing can be saved",
        hint="free some space there, or move cozy's data with COZY_HOME",
    )


def _read_only(directory: Path, why: str) -> StorageReadOnly:
    return StorageReadOnly(
        f"cozy cannot write to {directory} ({why})",
        hint="make it writable (a read-only disk, a permission or a quota), or set COZY_HOME",
    )


def probe(directory: Path) -> None:
    """Raise StorageFull / StorageReadOnly when a write in `directory` fails now."""
    name = directory / f".cozy-probe-{uuid.uuid4().hex[:8]}"
    try:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, PROBE)
            os.fsync(fd)
        finally:
            os.close(fd)
            name.unlink(missing_ok=True)
    except OSError as exc:
        raise explain_os(exc, directory) from exc
    free = free_bytes(directory)
    if free is not None and free < MIN_FREE:
        raise _full(directory)


def explain_os(exc: OSError, directory: Path) -> StorageError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return _full(directory)
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return _read_only(directory, exc.strerror or str(exc))
    return StorageError(f"cannot write to {directory}: {exc.strerror or exc}")


def explain_sqlite(orig: BaseException, path: Path) -> StorageError | None:
    """A clear error for SQLite's words for a full or read-only disk, else None."""
    if not isinstance(orig, sqlite3.Error):
        return None
    text = str(orig).lower()
    directory = path.parent
    if "disk is full" in text:
        return _full(directory)
    if "readonly" in text or "read-only" in text:
        return _read_only(directory, str(orig))
    if "disk i/o error" in text or "unable to open database file" in text:
        # SQLite reports a full disk during WAL work as an I/O error: ask the disk
        try:
            probe(directory)
        except StorageError as exc:
            return exc
    return None
