"""Images and audio that tools returned, on their way to the model and the faces.

OpenAI-style APIs take no images in a tool message, so after a round's tool messages
one user message carries the round's images: the same image parts as `cozy run -a`
(Ollama's `images`, OpenAI's `image_url` parts), for a model that sees images (its
provider's `accepts_images` is not False, as for `-a`). Each tool message says where
its images went, or why the model could not see them (a text-only model; audio, which
no chat provider here takes). The faces get each item's type, MIME type, size and
whether the model was shown it; never the bytes.

The follow-up message is for this turn only and is not stored: the stored tool message
keeps the text naming each item, so later turns carry no image bytes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from cozy.core.types import ImagePart, Message, ToolOutput

AUDIO_NOTE = "cozy passes no audio from tools to models"


class MediaRelay:
    """One round's images and audio: notes for the tool messages, one message after."""

    def __init__(self, accepts_images: Callable[[], Awaitable[bool | None]] | None) -> None:
        # None: no model takes part (`cozy tools call`)
        self.accepts_images = accepts_images
        self._sees: bool | None = None
        self.images: list[ImagePart] = []
        self.names: list[str] = []

    async def sees(self) -> bool:
        if self.accepts_images is None:
            return False
        if self._sees is None:  # asked once per round, and only when a tool returned media
            self._sees = await self.accepts_images() is not False
        return self._sees

    async def take(self, tool: str, output: ToolOutput) -> tuple[str, list[dict[str, Any]]]:
        """The tool message's text for the model, and what the faces are told."""
        if not output.media:
            return output.content, []
        notes: list[str] = []
        shown: list[dict[str, Any]] = []
        counts = {"image": 0, "audio": 0}
        for part in output.media:
            counts[part.kind] += 1
            label = f"{part.kind} {counts[part.kind]}"
            to_model = part.kind == "image" and await self.sees()
            if to_model:
                self.images.append(ImagePart(part.mime, part.data, source=f"{tool} {label}"))
                self.names.append(f"{label} from {tool}")
                # stored with the tool message: true of the turn it was said in
                notes.append(
                    f"[{label} is shown to you in the message after the tool results, "
                    "in this turn only]"
                )
            elif part.kind == "image" and self.accepts_images is not None:
                notes.append(f"[{label} was not shown to you: this model reads text only]")
            elif part.kind == "audio":
                notes.append(f"[{label} was not passed on: {AUDIO_NOTE}]")
            shown.append(
                {"type": part.kind, "mime": part.mime, "bytes": part.size, "to_model": to_model}
            )
        content = "\n".join([output.content, *notes]) if notes else output.content
        return content, shown

    def message(self) -> Message | None:
        """The user message with the round's images, or None when there are none."""
        if not self.images:
            return None
        text = (
            "The tool calls above returned these images (they come from the tools, not "
            f"from the user): {'; '.join(self.names)}."
        )
        return Message("user", text, images=list(self.images))
