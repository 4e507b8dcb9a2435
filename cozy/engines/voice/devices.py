"""Sound devices through sounddevice (PortAudio), with clear no-device errors."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from cozy.core.errors import CozyError

FILE_MODE_HINT = (
    "no sound card is needed in file mode: `cozy voice --input question.wav --output answer.wav`"
)


class AudioDeviceError(CozyError):
    """No usable microphone/speaker, or one disappeared mid-stream."""

    code = "audio_device"
    http_status = 503

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint or FILE_MODE_HINT)


@dataclass(slots=True)
class Device:
    index: int
    name: str
    inputs: int
    outputs: int
    default_rate: float
    default_input: bool = False
    default_output: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _sd() -> Any:
    try:
        import sounddevice as sd
    except ImportError as exc:
        raise AudioDeviceError(
            "sounddevice is not installed",
            hint="install the voice extra (`./install.sh --extras voice`); " + FILE_MODE_HINT,
        ) from exc
    except OSError as exc:  # the PortAudio shared library is missing
        raise AudioDeviceError(
            f"the PortAudio library is missing ({exc})",
            hint="install it with `sudo apt-get install libportaudio2`; " + FILE_MODE_HINT,
        ) from exc
    return sd


def list_devices() -> list[Device]:
    sd = _sd()
    try:
        raw: Any = sd.query_devices()
        default_in, default_out = sd.default.device
    except sd.PortAudioError as exc:
        raise AudioDeviceError(f"cannot list sound devices: {exc}") from exc
    return [
        Device(
            index=i,
            name=str(d["name"]),
            inputs=int(d["max_input_channels"]),
            outputs=int(d["max_output_channels"]),
            default_rate=float(d["default_samplerate"]),
            default_input=i == default_in,
            default_output=i == default_out,
        )
        for i, d in enumerate(raw)
    ]


def pick_device(wanted: int | str | None, *, kind: Literal["input", "output"]) -> int:
    """The device index to use: a number, a name fragment, or the system default."""
    devices = [d for d in list_devices() if (d.inputs if kind == "input" else d.outputs) > 0]
    label = "microphone" if kind == "input" else "speaker"
    if not devices:
        raise AudioDeviceError(f"no {label} found (this machine has no {kind} sound device)")
    if wanted is None or wanted == "":
        for d in devices:
            if d.default_input if kind == "input" else d.default_output:
                return d.index
        return devices[0].index
    if isinstance(wanted, int) or str(wanted).isdigit():
        index = int(wanted)
        if any(d.index == index for d in devices):
            return index
    else:
        for d in devices:
            if str(wanted).lower() in d.name.lower():
                return d.index
    names = ", ".join(f"{d.index}: {d.name}" for d in devices)
    raise AudioDeviceError(
        f"no {label} matches '{wanted}'",
        hint=f"choose one of {names} (see `cozy voice devices`)",
    )
