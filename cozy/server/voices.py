"""Which voices a network client may ask for: names, never file paths.

Piper takes a path to an `.onnx` voice where a name is expected, which is right in a
local engines.yaml and wrong over the network: a client could make the server load (or
probe for) any file. Every face that takes a voice from a request checks it here; the
server's operator maps names to files in `voice.tts.voices`.
"""

from __future__ import annotations

from cozy.core.errors import UsageError


def is_path(voice: str) -> bool:
    return "/" in voice or "\\" in voice or voice.lower().endswith(".onnx")


def client_voice(voice: str | None, param: str = "voice") -> str | None:
    if voice is not None and is_path(voice):
        raise UsageError(
            f"`{param}` '{voice[:80]}' is a file path: clients choose voices by name",
            hint="name the voice file in voice.tts.voices in the server's engines.yaml",
        )
    return voice
