"""Audio sources and sinks: microphone/speaker (sounddevice) and WAV files.

Sources yield 16 kHz mono float32 chunks. Sinks take PCM16 at their rate through a
`PlaybackBuffer`; `stop()` (barge-in) empties it, so playback goes silent at the
next block (20 ms) — the same code path for the speaker and for a file played in
real time. Without a sound card everything runs from files.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cozy.engines.voice.audio import STT_RATE, decode, from_pcm16, resample, write_wav
from cozy.engines.voice.devices import AudioDeviceError, pick_device

if TYPE_CHECKING:
    from cozy.engines.voice.audio import Samples

BLOCK_S = 0.02


class PlaybackBuffer:
    """Thread-safe PCM16 queue; `pull` pads with silence; `clear` is the barge-in."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._lock = threading.Lock()
        self.cleared_at: float | None = None
        self.silenced_at: float | None = None  # first block pulled after a clear

    def push(self, pcm: bytes) -> None:
        with self._lock:
            self._buf += pcm

    def pull(self, nbytes: int) -> tuple[bytes, bool]:
        """Up to nbytes of audio padded with silence, and whether any was real audio."""
        with self._lock:
            data = bytes(self._buf[:nbytes])
            del self._buf[:nbytes]
            if self.cleared_at is not None and self.silenced_at is None:
                self.silenced_at = time.perf_counter()
        return data + b"\x00" * (nbytes - len(data)), bool(data)

    def clear(self) -> None:
        with self._lock:
            self._buf.clear()
            self.cleared_at = time.perf_counter()
            self.silenced_at = None

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._buf)

    @property
    def stop_latency(self) -> float | None:
        if self.cleared_at is None or self.silenced_at is None:
            return None
        return self.silenced_at - self.cleared_at


class Sink:
    """Where spoken audio goes. Subclasses play `buffer` at `rate`."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.buffer = PlaybackBuffer()
        self.played = 0  # bytes of real audio played

    async def write(self, pcm: bytes) -> None:
        self.buffer.push(pcm)

    def stop(self) -> None:
        """Barge-in: drop everything not yet played."""
        self.buffer.clear()

    async def drain(self) -> None:
        while True:  # the playback task/thread empties the buffer
            if not self.buffer.pending:
                return
            await asyncio.sleep(BLOCK_S / 2)

    async def close(self) -> None:
        """Flush and release."""


class WavSink(Sink):
    """Writes what is played to a WAV file; `realtime=True` plays at speaker speed."""

    def __init__(self, path: Path, rate: int, *, realtime: bool = False) -> None:
        super().__init__(rate)
        self.path = path
        self.realtime = realtime
        self._out = bytearray()
        self._task: asyncio.Task[None] | None = None

    async def write(self, pcm: bytes) -> None:
        if not self.realtime:
            self._out += pcm
            self.played += len(pcm)
            return
        self.buffer.push(pcm)
        if self._task is None:
            self._task = asyncio.create_task(self._play())

    async def _play(self) -> None:
        block = int(self.rate * BLOCK_S) * 2
        next_at = time.perf_counter()
        while True:
            data, real = self.buffer.pull(block)
            if real:
                self._out += data
                self.played += len(data)
            next_at += BLOCK_S
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))

    async def drain(self) -> None:
        if self.realtime:
            await super().drain()
            await asyncio.sleep(BLOCK_S)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        write_wav(self.path, from_pcm16(bytes(self._out)), self.rate)

    @property
    def seconds(self) -> float:
        return self.played / 2 / self.rate


class SpeakerSink(Sink):
    """The sound card, through a sounddevice callback pulling 20 ms blocks."""

    def __init__(self, rate: int, device: int | str | None = None) -> None:
        super().__init__(rate)
        import sounddevice as sd

        self.device = pick_device(device, kind="output")
        self.error: str | None = None

        def callback(outdata: Any, frames: int, _time: Any, status: Any) -> None:
            data, real = self.buffer.pull(frames * 2)
            if real:
                self.played += len(data)
            outdata[:] = np.frombuffer(data, dtype="<i2").reshape(-1, 1)

        try:
            self._stream = sd.OutputStream(
                samplerate=rate,
                channels=1,
                dtype="int16",
                device=self.device,
                blocksize=int(rate * BLOCK_S),
                callback=callback,
                finished_callback=self._finished,
            )
            self._stream.start()
        except sd.PortAudioError as exc:
            raise AudioDeviceError(f"cannot open the speaker: {exc}") from exc

    def _finished(self) -> None:
        if self.buffer.pending:
            self.error = "the speaker stopped (device removed?)"

    async def drain(self) -> None:
        while self.buffer.pending:
            if not self._stream.active:
                raise AudioDeviceError(self.error or "the speaker stopped mid-stream")
            await asyncio.sleep(BLOCK_S / 2)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            self._stream.stop()
            self._stream.close()


async def file_source(
    path: Path, *, chunk_s: float = 0.032, realtime: bool = False
) -> AsyncIterator[Samples]:
    """A WAV/FLAC/OGG file as 16 kHz chunks; `realtime` paces them like a microphone."""
    clip = await asyncio.to_thread(decode, path, what=f"input file {path}")
    samples = await asyncio.to_thread(resample, clip.samples, clip.rate, STT_RATE)
    step = max(1, int(chunk_s * STT_RATE))
    started = time.perf_counter()
    for i in range(0, len(samples), step):
        if realtime:
            due = started + i / STT_RATE
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
        yield samples[i : i + step]


async def mic_source(
    device: int | str | None = None, *, chunk_s: float = 0.032
) -> AsyncIterator[Samples]:
    """The microphone as 16 kHz chunks, resampled from the device's native rate."""
    import sounddevice as sd
    import soxr

    index = pick_device(device, kind="input")
    info: Any = sd.query_devices(index, "input")
    rate = int(info["default_samplerate"])
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Samples | None] = asyncio.Queue()
    resampler = soxr.ResampleStream(rate, STT_RATE, 1, dtype="float32")

    def callback(indata: Any, frames: int, _time: Any, status: Any) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, indata[:, 0].copy())

    def finished() -> None:
        loop.call_soon_threadsafe(queue.put_nowait, None)

    try:
        stream = sd.InputStream(
            samplerate=rate,
            channels=1,
            dtype="float32",
            device=index,
            blocksize=int(rate * chunk_s),
            callback=callback,
            finished_callback=finished,
        )
        stream.start()
    except sd.PortAudioError as exc:
        raise AudioDeviceError(f"cannot open the microphone: {exc}") from exc
    try:
        while True:
            block = await queue.get()
            if block is None:
                raise AudioDeviceError("the microphone stopped mid-stream (device removed?)")
            out = resampler.resample_chunk(block)
            if len(out):
                yield np.asarray(out, dtype=np.float32)
    finally:
        with contextlib.suppress(Exception):
            stream.stop()
            stream.close()
