"""Speech encoders for `/v1/audio/speech`: mp3, opus, aac, flac, wav, pcm.

PCM16 mono goes in as it is synthesised; encoded bytes come out as soon as the
encoder has a frame, so a client starts playing after the first sentence. The
compressed formats use PyAV (FFmpeg's libmp3lame, libopus, aac and flac encoders; PyAV
comes with faster-whisper). soundfile/libsndfile can write mp3, ogg-opus and flac
but not aac, and it needs a seekable file, so it cannot stream.

- mp3: MPEG-1/2 layer III (libmp3lame), 64 kbit/s mono, streamed.
- opus: Ogg Opus (what OpenAI sends), 32 kbit/s, streamed by Ogg page.
- aac: AAC-LC in ADTS frames, 64 kbit/s, streamed.
- flac: lossless; written whole at the end, so its header carries the length
  (decoders such as libsndfile refuse a FLAC stream without it).
- wav: a 16-bit header with unknown sizes, then PCM as it comes.
- pcm: raw 16-bit little-endian mono at the engine's rate (X-Sample-Rate header).
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np

from cozy.core.errors import MissingExtraError
from cozy.engines.voice.audio import wav_header

MEDIA_TYPES: dict[str, str] = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}
# format -> (container, codec, bit rate)
_PYAV: dict[str, tuple[str, str, int | None]] = {
    "mp3": ("mp3", "libmp3lame", 64_000),
    "opus": ("ogg", "libopus", 32_000),
    "aac": ("adts", "aac", 64_000),
    "flac": ("flac", "flac", None),
}


class _Sink:
    """A write-only file for PyAV's muxer: what it writes is handed out by `take()`."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def write(self, data: bytes) -> int:
        self.buffer += data
        return len(data)

    def take(self) -> bytes:
        out = bytes(self.buffer)
        self.buffer.clear()
        return out


class SpeechEncoder:
    """Feed PCM16 chunks with `encode()`, then `finish()`; each returns bytes to send."""

    def __init__(self, fmt: str, rate: int) -> None:
        if fmt not in MEDIA_TYPES:
            raise ValueError(f"unknown speech format {fmt!r}")
        self.fmt = fmt
        self.rate = rate
        self.media_type = MEDIA_TYPES[fmt]
        self._started = False
        self._pts = 0
        self._container: Any = None
        self._stream: Any = None
        self._out: _Sink | io.BytesIO | None = None
        if fmt in _PYAV:
            self._open()

    def _open(self) -> None:
        try:
            import av
        except ImportError as exc:
            raise MissingExtraError("voice", f"speech as {self.fmt}") from exc
        container, codec, bit_rate = _PYAV[self.fmt]
        # flac goes to a seekable buffer so the muxer can write the length at the end
        self._out = io.BytesIO() if self.fmt == "flac" else _Sink()
        self._container = av.open(self._out, mode="w", format=container)
        self._stream = self._container.add_stream(codec, rate=self.rate, layout="mono")
        if bit_rate:
            self._stream.bit_rate = bit_rate

    def _take(self) -> bytes:
        if isinstance(self._out, _Sink):
            return self._out.take()
        return b""

    def encode(self, pcm: bytes) -> bytes:
        if self.fmt == "pcm":
            return pcm
        if self.fmt == "wav":
            head = b"" if self._started else wav_header(self.rate)
            self._started = True
            return head + pcm
        if not pcm:
            return b""
        import av

        samples = np.frombuffer(pcm, dtype="<i2").reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = self.rate
        frame.pts = self._pts
        self._pts += samples.shape[1]
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        return self._take()

    def finish(self) -> bytes:
        if self.fmt == "wav" and not self._started:
            self._started = True
            return wav_header(self.rate, 0)
        if self._container is None:
            return b""
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()
        self._container = None
        if isinstance(self._out, io.BytesIO):
            return self._out.getvalue()
        return self._take()

    def close(self) -> None:
        """Release the encoder when a stream is abandoned (client gone)."""
        if self._container is not None:
            # closing a half-written container: nothing in it is worth keeping
            with contextlib.suppress(Exception):
                self._container.close()
            self._container = None
