"""File helpers the model-file code of the engines shares (ai, embed, voice)."""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path


def models_dir() -> Path:
    """Models built from package contents (assembled Whisper, the int8 embedder graph),
    shared by every cozy home: `$COZY_MODELS_DIR`, else the user cache dir."""
    if env := os.environ.get("COZY_MODELS_DIR"):
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("cozy")) / "models"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def package_dir(package: str, sub: str) -> Path | None:
    """`sub` in an installed package's directory (a model wheel's files), or None."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / sub
