"""Finding the files to index: missing paths, permission errors, symlink loops, skips.

Every problem becomes a per-file result with a reason; nothing here raises for a
single bad path.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SKIP_DIRS = frozenset(
    {
        "node_modules",
        "__pycache__",
        "venv",
        "site-packages",
        "dist",
        "build",
        "target",
        ".git",
        ".hg",
        ".svn",
    }
)


@dataclass(slots=True)
class FileResult:
    """What happened to one path: added, updated, unchanged, renamed, removed, skipped, failed."""

    path: str
    status: str
    detail: str = ""
    chunks: int = 0
    size: int = 0
    document_id: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "status": self.status,
            "detail": self.detail,
            "chunks": self.chunks,
            "bytes": self.size,
            "document_id": self.document_id,
        }


@dataclass(slots=True)
class Walk:
    files: list[Path] = field(default_factory=list)
    problems: list[FileResult] = field(default_factory=list)
    roots: list[Path] = field(default_factory=list)  # directories walked (for deletions)
    unreadable: list[Path] = field(default_factory=list)  # directories we could not list


def _oserror(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied (check the file's permissions, e.g. `chmod u+r`)"
    return exc.strerror or str(exc)


def walk(paths: Sequence[Path | str], *, include_hidden: bool = False) -> Walk:
    out = Walk()
    seen_files: set[Path] = set()
    for raw in paths:
        given = Path(raw).expanduser()
        if not os.path.lexists(given):
            out.problems.append(FileResult(str(given), "failed", "no such file or directory"))
            continue
        if given.is_symlink() and not given.exists():
            out.problems.append(FileResult(str(given), "failed", "broken symbolic link"))
            continue
        try:
            resolved = given.resolve(strict=True)
        except (OSError, RuntimeError) as exc:  # RuntimeError: symlink loop on old Pythons
            detail = _oserror(exc) if isinstance(exc, OSError) else "symlink loop"
            out.problems.append(FileResult(str(given), "failed", detail))
            continue
        if resolved.is_file():
            if resolved not in seen_files:
                seen_files.add(resolved)
                out.files.append(resolved)
            continue
        if not resolved.is_dir():
            out.problems.append(
                FileResult(str(given), "skipped", "not a regular file (device, socket or fifo)")
            )
            continue
        out.roots.append(resolved)
        _walk_dir(resolved, out, seen_files, include_hidden)
    return out


def _walk_dir(root: Path, out: Walk, seen_files: set[Path], include_hidden: bool) -> None:
    visited: set[tuple[int, int]] = set()

    def onerror(exc: OSError) -> None:
        where = Path(exc.filename) if exc.filename else root
        out.unreadable.append(where)
        out.problems.append(FileResult(str(where), "failed", _oserror(exc)))

    for dirpath, dirnames, filenames in os.walk(root, onerror=onerror, followlinks=True):
        try:
            st = os.stat(dirpath)
        except OSError as exc:
            onerror(exc)
            dirnames[:] = []
            continue
        key = (st.st_dev, st.st_ino)
        if key in visited:
            out.problems.append(
                FileResult(dirpath, "skipped", "symlink loop (directory already visited)")
            )
            dirnames[:] = []
            continue
        visited.add(key)
        dirnames[:] = sorted(
            d for d in dirnames if d not in SKIP_DIRS and (include_hidden or not d.startswith("."))
        )
        for name in sorted(filenames):
            if not include_hidden and name.startswith("."):
                continue
            path = Path(dirpath) / name
            try:
                resolved = path.resolve(strict=True)
            except (OSError, RuntimeError):
                out.problems.append(FileResult(str(path), "failed", "broken symbolic link"))
                continue
            if not resolved.is_file():
                continue
            if resolved not in seen_files:
                seen_files.add(resolved)
                out.files.append(resolved)


def under(path: str, roots: Sequence[Path]) -> bool:
    return any(path.startswith(str(root) + os.sep) for root in roots)


def iter_sizes(files: Sequence[Path]) -> Iterator[tuple[Path, int, float | None, str | None]]:
    """(path, size, mtime, error) for each file."""
    for path in files:
        try:
            st = path.stat()
        except OSError as exc:
            yield path, 0, None, _oserror(exc)
            continue
        yield path, st.st_size, st.st_mtime, None
