"""Audio as numpy arrays: decode, convert, resample, encode.

Inside cozy audio is mono float32 in [-1, 1] plus a sample rate. On the wire it is
16-bit little-endian PCM (`pcm16`) or WAV. Decoding uses soundfile (WAV, FLAC, OGG,
and MP3 where libsndfile supports it); resampling uses soxr. Bad input raises
`AudioFormatError` with the reason and what to send instead.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cozy.core.errors import UsageError

if TYPE_CHECKING:
    from numpy.typing import NDArray

    Samples = NDArray[np.float32]

STT_RATE = 16_000  # what the recognisers and VADs take
MIN_RATE, MAX_RATE = 4_000, 192_000
MAX_SECONDS = 15 * 60
FORMATS_HINT = "send 16-bit PCM WAV (any rate, mono or stereo), FLAC or OGG"


class AudioFormatError(UsageError):
    """Audio that cannot be decoded or used (corrupt, empty, wrong rate)."""

    code = "invalid_audio"


@dataclass(slots=True)
class Clip:
    """Mono float32 samples with their rate."""

    samples: Samples
    rate: int

    @property
    def seconds(self) -> float:
        return len(self.samples) / float(self.rate) if self.rate else 0.0

    def at(self, rate: int) -> Clip:
        return Clip(resample(self.samples, self.rate, rate), rate)

    def pcm16(self) -> bytes:
        return to_pcm16(self.samples)

    def wav(self) -> bytes:
        return encode_wav(self.samples, self.rate)


def check_rate(rate: int) -> int:
    if not isinstance(rate, int) or not MIN_RATE <= rate <= MAX_RATE:
        raise AudioFormatError(
            f"unsupported sample rate {rate!r}",
            hint=f"use a rate between {MIN_RATE} and {MAX_RATE} Hz (16000 is best for speech)",
        )
    return rate


def to_mono(data: NDArray[np.floating]) -> Samples:
    arr = np.asarray(data, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr.mean(axis=1, dtype=np.float32)
    elif arr.ndim != 1:
        raise AudioFormatError(f"audio has {arr.ndim} dimensions", hint=FORMATS_HINT)
    return np.ascontiguousarray(arr, dtype=np.float32)


def resample(samples: Samples, src: int, dst: int) -> Samples:
    """Resample with soxr (high quality, fast); a no-op at the same rate."""
    check_rate(src)
    check_rate(dst)
    if src == dst or len(samples) == 0:
        return samples.astype(np.float32, copy=False)
    import soxr

    out = soxr.resample(samples, src, dst, quality="HQ")
    return np.asarray(out, dtype=np.float32)


def to_pcm16(samples: Samples) -> bytes:
    clipped = np.clip(samples, -1.0, 1.0)
    return (clipped * 32767.0).astype("<i2").tobytes()


def from_pcm16(data: bytes) -> Samples:
    if len(data) % 2:
        raise AudioFormatError(
            f"PCM data has an odd number of bytes ({len(data)})",
            hint="send 16-bit little-endian mono PCM (2 bytes per sample)",
        )
    return (np.frombuffer(data, dtype="<i2").astype(np.float32)) / 32768.0


def decode(data: bytes | Path, *, what: str = "audio") -> Clip:
    """Decode a file or bytes (WAV/FLAC/OGG/...) to a mono clip at its own rate."""
    import soundfile as sf

    if isinstance(data, bytes | bytearray) and len(data) == 0:
        raise AudioFormatError(f"the {what} is empty", hint=FORMATS_HINT)
    source: Path | io.BytesIO = data if isinstance(data, Path) else io.BytesIO(data)
    if isinstance(source, Path) and not source.is_file():
        raise AudioFormatError(f"no audio file at {source}", hint="check the path")
    try:
        raw, rate = sf.read(source, dtype="float32", always_2d=False)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioFormatError(
            f"could not decode the {what}: {exc}".rstrip(), hint=FORMATS_HINT
        ) from exc
    clip = Clip(to_mono(raw), check_rate(int(rate)))
    if len(clip.samples) == 0:
        raise AudioFormatError(f"the {what} has no samples", hint=FORMATS_HINT)
    if clip.seconds > MAX_SECONDS:
        raise AudioFormatError(
            f"the {what} is {clip.seconds:.0f} s long; the limit is {MAX_SECONDS} s",
            hint="split it into shorter files",
        )
    return clip


def decode_pcm16(data: bytes, rate: int) -> Clip:
    clip = Clip(from_pcm16(data), check_rate(rate))
    if len(clip.samples) == 0:
        raise AudioFormatError("the audio is empty", hint=FORMATS_HINT)
    return clip


def encode_wav(samples: Samples, rate: int) -> bytes:
    pcm = to_pcm16(samples)
    return wav_header(rate, len(pcm)) + pcm


def wav_header(rate: int, data_bytes: int | None = None) -> bytes:
    """A 16-bit mono WAV header. `data_bytes=None` marks a stream of unknown length."""
    size = 0xFFFFFFFF if data_bytes is None else data_bytes
    riff = 0xFFFFFFFF if data_bytes is None else 36 + data_bytes
    return (
        b"RIFF"
        + struct.pack("<I", riff)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
        + b"data"
        + struct.pack("<I", size)
    )


def write_wav(path: Path, samples: Samples, rate: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_wav(samples, rate))


def rms(samples: Samples) -> float:
    if len(samples) == 0:
        return 0.0
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))


def level_db(samples: Samples) -> float:
    """Level in dBFS (-100 for silence); for the live status line."""
    value = rms(samples)
    return -100.0 if value <= 1e-5 else max(-100.0, 20.0 * float(np.log10(value)))


def is_silent(samples: Samples, threshold_db: float = -50.0) -> bool:
    return level_db(samples) < threshold_db
