"""Read a GGUF file's header: what model it is, how big its window is, whether it is whole.

Own code rather than the `gguf` package's `GGUFReader`: that reader builds numpy views of
every metadata field, and took 46 s (at load 10) on the 49k-token vocabulary of the
bundled 135M model; cozy needs a dozen scalars and the end of the tensor data, which a
walk over the header gives in milliseconds. Nothing here imports llama.cpp, so a file
can be checked (and refused with a clear message) before anything is loaded.

The layout (GGUF v2/v3, little endian): magic `GGUF`, version u32, tensor count u64,
metadata count u64, the metadata key/value pairs, the tensor infos (name, dims, type,
offset), padding to `general.alignment`, then the tensor data.
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cozy.core.errors import ModelFileError

MAGIC = b"GGUF"

# value types: struct format of the fixed-size ones (8 = string, 9 = array)
_SCALARS: dict[int, str] = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9

# ggml tensor types: (elements per block, bytes per block). Facts from ggml.h / ggml.c.
GGML_TYPES: dict[int, tuple[int, int]] = {
    0: (1, 4),  # F32
    1: (1, 2),  # F16
    2: (32, 18),  # Q4_0
    3: (32, 20),  # Q4_1
    6: (32, 22),  # Q5_0
    7: (32, 24),  # Q5_1
    8: (32, 34),  # Q8_0
    9: (32, 36),  # Q8_1
    10: (256, 84),  # Q2_K
    11: (256, 110),  # Q3_K
    12: (256, 144),  # Q4_K
    13: (256, 176),  # Q5_K
    14: (256, 210),  # Q6_K
    15: (256, 292),  # Q8_K
    16: (256, 66),  # IQ2_XXS
    17: (256, 74),  # IQ2_XS
    18: (256, 98),  # IQ3_XXS
    19: (256, 50),  # IQ1_S
    20: (32, 18),  # IQ4_NL
    21: (256, 110),  # IQ3_S
    22: (256, 82),  # IQ2_S
    23: (256, 136),  # IQ4_XS
    24: (1, 1),  # I8
    25: (1, 2),  # I16
    26: (1, 4),  # I32
    27: (1, 8),  # I64
    28: (1, 8),  # F64
    29: (256, 56),  # IQ1_M
    30: (1, 2),  # BF16
    34: (256, 54),  # TQ1_0
    35: (256, 66),  # TQ2_0
    39: (32, 17),  # MXFP4
}

# Keys kept from the metadata (the vocabulary and other arrays are skipped, not read).
_KEEP_SUFFIXES = (
    ".context_length",
    ".block_count",
    ".embedding_length",
    ".attention.head_count",
    ".attention.head_count_kv",
    ".attention.key_length",
    ".attention.value_length",
)


@dataclass(slots=True)
class GGUFInfo:
    path: Path
    size: int
    version: int
    architecture: str
    name: str
    metadata: dict[str, Any] = field(default_factory=dict)
    tensor_count: int = 0
    data_end: int = 0  # where the last tensor's bytes end

    def arch_value(self, suffix: str) -> int | None:
        value = self.metadata.get(f"{self.architecture}{suffix}")
        if isinstance(value, list):  # per-layer values (some archs): the largest
            value = max((v for v in value if isinstance(v, int)), default=None)
        return int(value) if isinstance(value, int | float) else None

    @property
    def context_length(self) -> int | None:
        return self.arch_value(".context_length")

    @property
    def chat_template(self) -> str | None:
        value = self.metadata.get("tokenizer.chat_template")
        return value if isinstance(value, str) else None

    def kv_cache_bytes(self, n_ctx: int) -> int:
        """f16 K and V for `n_ctx` tokens over every layer (llama.cpp's default cache)."""
        layers = self.arch_value(".block_count") or 0
        embd = self.arch_value(".embedding_length") or 0
        heads = self.arch_value(".attention.head_count") or 1
        heads_kv = self.arch_value(".attention.head_count_kv") or heads
        k_len = self.arch_value(".attention.key_length") or (embd // max(heads, 1))
        v_len = self.arch_value(".attention.value_length") or k_len
        return n_ctx * layers * heads_kv * (k_len + v_len) * 2


class _Cursor:
    def __init__(self, buf: Any, path: Path) -> None:
        self.buf = buf
        self.pos = 0
        self.path = path
        self.end = len(buf)

    def need(self, n: int) -> None:
        if self.pos + n > self.end:
            raise _Truncated

    def unpack(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        self.need(size)
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return value

    def string(self) -> str:
        n = self.unpack("<Q")
        self.need(n)
        raw = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return raw.decode("utf-8", errors="replace")

    def skip_string(self) -> None:
        n = self.unpack("<Q")
        self.need(n)
        self.pos += n

    def value(self, kind: int, keep: bool) -> Any:
        if kind in _SCALARS:
            return self.unpack(_SCALARS[kind])
        if kind == _STRING:
            if keep:
                return self.string()
            self.skip_string()
            return None
        if kind == _ARRAY:
            item = self.unpack("<I")
            n = self.unpack("<Q")
            if item in _SCALARS:
                size = struct.calcsize(_SCALARS[item])
                if keep and n <= 4096:
                    return [self.unpack(_SCALARS[item]) for _ in range(n)]
                self.need(n * size)
                self.pos += n * size
                return None
            for _ in range(n):  # arrays of strings (the vocabulary) or of arrays
                self.value(item, False)
            return None
        raise _BadValue(kind)


class _Truncated(Exception):
    pass


class _BadValue(Exception):
    def __init__(self, kind: int) -> None:
        super().__init__(kind)
        self.kind = kind


def _wants(key: str) -> bool:
    return (
        key.startswith("general.")
        or key == "tokenizer.chat_template"
        or key.endswith(_KEEP_SUFFIXES)
    )


def read_info(path: str | os.PathLike[str]) -> GGUFInfo:
    """The header of `path`, checked: a GGUF, whole, with known tensor types.

    Raises `ModelFileError` naming what is wrong and what to do.
    """
    p = Path(path).expanduser()
    try:
        size = p.stat().st_size
        fh = p.open("rb")
    except FileNotFoundError:
        raise ModelFileError(
            f"the model file {p} does not exist",
            hint="check the path (`cozy models` lists the models cozy found)",
        ) from None
    except OSError as exc:
        raise ModelFileError(
            f"the model file {p} cannot be read ({exc.strerror})",
            hint="check the file's permissions",
        ) from exc
    with fh:
        if size < 24 or fh.read(4) != MAGIC:
            raise ModelFileError(
                f"{p} is not a GGUF model file (no GGUF header)",
                hint="give the path of a .gguf file (llama.cpp's format; convert other "
                "formats with llama.cpp's convert_hf_to_gguf.py), or use Ollama",
            )
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            view = memoryview(mm)
            try:
                return _parse(view, p, size)
            except _Truncated:
                raise _truncated(p, size, None) from None
            except _BadValue as exc:
                raise ModelFileError(
                    f"{p} has a GGUF header cozy cannot read (value type {exc.kind})",
                    hint="the file is damaged or from a newer GGUF version: download it again",
                ) from None
            finally:
                view.release()  # the map cannot close while a view of it is alive


def _truncated(p: Path, size: int, need: int | None) -> ModelFileError:
    what = f" ({size:,} bytes, its tensors need {need:,})" if need else ""
    return ModelFileError(
        f"the model file {p} is truncated{what}",
        hint="the download or copy did not finish: fetch the file again",
    )


def _parse(buf: memoryview, p: Path, size: int) -> GGUFInfo:
    cur = _Cursor(buf, p)
    cur.pos = 4
    version = cur.unpack("<I")
    if version not in (2, 3):
        raise ModelFileError(
            f"{p} is GGUF version {version}; this llama.cpp reads versions 2 and 3",
            hint="convert the model again with a current llama.cpp, or use Ollama",
        )
    n_tensors = cur.unpack("<Q")
    n_kv = cur.unpack("<Q")
    meta: dict[str, Any] = {}
    for _ in range(n_kv):
        key = cur.string()
        kind = cur.unpack("<I")
        value = cur.value(kind, _wants(key))
        if value is not None:
            meta[key] = value
    tensors_end = 0
    for _ in range(n_tensors):
        cur.skip_string()
        dims = cur.unpack("<I")
        count = 1
        for _ in range(dims):
            count *= cur.unpack("<Q")
        ttype = cur.unpack("<I")
        offset = cur.unpack("<Q")
        block, nbytes = GGML_TYPES.get(ttype, (0, 0))
        if not block:
            raise ModelFileError(
                f"{p} holds tensors of a type this cozy does not know ({ttype})",
                hint="use a common quantisation (Q4_K_M, Q8_0, F16), or use Ollama",
            )
        tensors_end = max(tensors_end, offset + count // block * nbytes)
    align = int(meta.get("general.alignment", 32) or 32)
    data_end = (cur.pos + align - 1) // align * align + tensors_end
    if data_end > size:
        raise _truncated(p, size, data_end)
    arch = str(meta.get("general.architecture") or "")
    if not arch:
        raise ModelFileError(
            f"{p} names no model architecture (general.architecture)",
            hint="the file is damaged or not a language model: download it again",
        )
    return GGUFInfo(
        path=p,
        size=size,
        version=version,
        architecture=arch,
        name=str(meta.get("general.name") or p.stem),
        metadata=meta,
        tensor_count=n_tensors,
        data_end=data_end,
    )
