"""Voice activity detection: Silero (ONNX, no torch) with webrtcvad as the fallback.

Both take 16 kHz mono float32 and give a speech probability per frame. `Segmenter`
turns frame decisions into speech spans with hangover (for auto-stop), and
`speech_spans()` runs it over a whole clip. Everything here is blocking: callers
run it in a thread.
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cozy.core.errors import EngineError, MissingExtraError
from cozy.engines.voice.audio import STT_RATE
from cozy.engines.voice.options import VADOptions, vad_options

if TYPE_CHECKING:
    from cozy.engines.voice.audio import Samples


class VAD(ABC):
    """Frame-wise speech probability at 16 kHz."""

    name: str = ""
    frame: int = 512  # samples per frame at 16 kHz

    @abstractmethod
    def prob(self, frame: Samples) -> float: ...

    def reset(self) -> None:  # noqa: B027 - stateless VADs need nothing
        """Forget the stream state (call between utterances)."""


def silero_model_path(explicit: str | None = None) -> Path:
    """The ONNX file shipped inside the `silero-vad` wheel, found without importing it
    (its __init__ imports torch)."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise EngineError(f"no Silero VAD model at {path}", hint="fix vad.model_path")
        return path
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise EngineError(
            "the Silero VAD model is not installed",
            hint="install it with `uv pip install --no-deps silero-vad` "
            "(or set vad: {provider: webrtc} in engines.yaml)",
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad.onnx"
    if not path.is_file():
        raise EngineError(
            f"silero_vad.onnx is missing from {path.parent}", hint="reinstall silero-vad"
        )
    return path


class SileroVAD(VAD):
    """Silero VAD v5 run by onnxruntime: 512-sample frames plus 64 samples of context."""

    name = "silero"
    frame = 512
    context = 64

    def __init__(self, model_path: str | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise MissingExtraError("voice", "Silero VAD (onnxruntime)") from exc
        opts = ort.SessionOptions()
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = 1
        opts.log_severity_level = 3
        self._session = ort.InferenceSession(
            str(silero_model_path(model_path)),
            sess_options=opts,
            providers=["CPUExecutionProvider"],
        )
        self._sr = np.array(STT_RATE, dtype=np.int64)
        self.reset()

    def reset(self) -> None:
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._ctx = np.zeros(self.context, dtype=np.float32)

    def prob(self, frame: Samples) -> float:
        if len(frame) != self.frame:
            frame = np.pad(frame[: self.frame], (0, max(0, self.frame - len(frame))))
        x = np.concatenate([self._ctx, frame.astype(np.float32)])[None, :]
        out, self._state = self._session.run(
            None, {"input": x, "state": self._state, "sr": self._sr}
        )
        self._ctx = x[0, -self.context :]
        return float(out[0][0])


class WebRtcVAD(VAD):
    """webrtcvad (GMM, tiny and fast): 30 ms frames, binary decisions."""

    name = "webrtc"
    frame = 480

    def __init__(self, aggressiveness: int = 2) -> None:
        try:
            import webrtcvad
        except ImportError as exc:
            raise MissingExtraError("voice", "webrtcvad") from exc
        self._vad: Any = webrtcvad.Vad(int(aggressiveness))

    def prob(self, frame: Samples) -> float:
        if len(frame) != self.frame:
            frame = np.pad(frame[: self.frame], (0, max(0, self.frame - len(frame))))
        pcm = (np.clip(frame, -1, 1) * 32767).astype("<i2").tobytes()
        return 1.0 if self._vad.is_speech(pcm, STT_RATE) else 0.0


def make_vad(options: VADOptions | dict[str, Any] | None = None) -> VAD:
    """The configured VAD; `auto` tries Silero, then webrtcvad."""
    o = vad_options(options)
    if o.provider == "webrtc":
        return WebRtcVAD(o.aggressiveness)
    try:
        return SileroVAD(o.model_path)
    except (EngineError, MissingExtraError):
        if o.provider != "auto":
            raise
        return WebRtcVAD(o.aggressiveness)


@dataclass(slots=True)
class Span:
    start: float
    end: float


class Segmenter:
    """Streaming speech/silence decisions with hangover.

    `push(samples)` consumes any amount of 16 kHz audio and returns events:
    ("start", t) when speech begins and ("end", t) after `silence_ms` of silence.
    """

    def __init__(
        self,
        vad: VAD,
        *,
        threshold: float = 0.5,
        min_speech_ms: float = 90.0,
        silence_ms: float = 500.0,
    ) -> None:
        self.vad = vad
        self.threshold = threshold
        self._buf = np.zeros(0, dtype=np.float32)
        self._pos = 0  # samples consumed
        frame_ms = 1000.0 * vad.frame / STT_RATE
        self._need_speech = max(1, round(min_speech_ms / frame_ms))
        self._need_silence = max(1, round(silence_ms / frame_ms))
        self._run_speech = 0
        self._run_silence = 0
        self.in_speech = False
        vad.reset()

    def push(self, samples: Samples) -> list[tuple[str, float]]:
        events: list[tuple[str, float]] = []
        self._buf = np.concatenate([self._buf, samples.astype(np.float32, copy=False)])
        n = self.vad.frame
        while len(self._buf) >= n:
            frame, self._buf = self._buf[:n], self._buf[n:]
            self._pos += n
            p = self.vad.prob(frame)
            if p >= self.threshold:
                self._run_speech += 1
                self._run_silence = 0
                if not self.in_speech and self._run_speech >= self._need_speech:
                    self.in_speech = True
                    start = (self._pos - self._run_speech * n) / STT_RATE
                    events.append(("start", max(0.0, start)))
            else:
                self._run_silence += 1
                self._run_speech = 0
                if self.in_speech and self._run_silence >= self._need_silence:
                    self.in_speech = False
                    end = (self._pos - self._run_silence * n) / STT_RATE
                    events.append(("end", end))
        return events

    @property
    def position(self) -> float:
        return self._pos / STT_RATE


def speech_spans(vad: VAD, samples: Samples, **kw: Any) -> list[Span]:
    """Speech spans (seconds) of a whole 16 kHz clip."""
    seg = Segmenter(vad, **kw)
    spans: list[Span] = []
    start: float | None = None
    for kind, t in seg.push(samples):
        if kind == "start":
            start = t
        elif start is not None:
            spans.append(Span(start, t))
            start = None
    if start is not None:
        spans.append(Span(start, seg.position))
    return spans
