"""Cut an LLM text stream into speakable sentences as soon as each one is complete.

A sentence ends at . ! ? … (or a newline) followed by whitespace; decimals, "e.g."
and common abbreviations do not end one. A run-on without an end is cut at a
comma or space once it is long, so speech never waits for a whole paragraph.
Markdown decoration is stripped so it is not read aloud.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable

ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e", "approx", "no",
}  # fmt: skip
_END = re.compile(r"([.!?…]+[\"')\]]*)(\s+)|(\n\s*)")
_MARKDOWN = re.compile(r"(\*\*|__|`+|^#+\s*|^\s*[-*+]\s+|^\s*\d+\.\s+)", re.MULTILINE)
_LINK = re.compile(r"\[([^\]]+)\]\([^)]+\)")
MAX_CHARS = 220


def clean_for_speech(text: str) -> str:
    text = _LINK.sub(r"\1", text)
    text = _MARKDOWN.sub("", text)
    return " ".join(text.split())


def _cut(buffer: str, final: bool) -> tuple[list[str], str]:
    out: list[str] = []
    start = 0
    for match in _END.finditer(buffer):
        if match.group(1):
            word = buffer[start : match.start(1)].rsplit(None, 1)[-1:] or [""]
            if word[0].lower().rstrip(".") in ABBREVIATIONS and match.group(1) == ".":
                continue
            end = match.end(1)
        else:
            end = match.start(3)
        piece = buffer[start:end].strip()
        if piece:
            out.append(piece)
        start = match.end()
    rest = buffer[start:]
    while len(rest) > MAX_CHARS:  # a run-on: cut at the last comma, else the last space
        window = rest[:MAX_CHARS]
        cut = max(window.rfind(", "), window.rfind("; "))
        cut = cut + 1 if cut > MAX_CHARS // 3 else window.rfind(" ")
        if cut <= 0:
            cut = MAX_CHARS
        out.append(rest[:cut].strip())
        rest = rest[cut:].lstrip()
    if final and rest.strip():
        out.append(rest.strip())
        rest = ""
    return out, rest


_CLAUSE = re.compile(r"[,;:]\s+")
# a long first sentence without clause punctuation is cut before one of these words
_JOIN = re.compile(
    r"\s(?=(?:and|but|or|so|because|which|while|when|where|although|though)\s)", re.IGNORECASE
)
FIRST_CLAUSE_MIN_WORDS = 4
JOIN_SPLIT_MIN_WORDS = 9
MIN_PART_WORDS = 3  # never a conjunction split that leaves a fragment shorter than this


def first_clause(sentence: str) -> tuple[str, ...]:
    """The answer's first sentence, split after its first clause.

    Time to first audio is the synthesis time of what is spoken first, and a neural
    voice's synthesis time grows with the audio it makes: "Done, the lights are on."
    starts sooner as "Done," + the rest, with the pause the comma asks for anyway.
    A long sentence with no comma is cut before a conjunction ("... France | and a
    lovely city."). Only the first sentence is split (the rest are synthesised while
    the first plays); short ones stay whole for their prosody.
    """
    words = sentence.split()
    if len(words) < FIRST_CLAUSE_MIN_WORDS:
        return (sentence,)
    match = _CLAUSE.search(sentence)
    if match is not None and sentence[match.end() :].strip():
        return sentence[: match.start() + 1], sentence[match.end() :]
    if match is None and len(words) >= JOIN_SPLIT_MIN_WORDS:
        for join in _JOIN.finditer(sentence):
            head, tail = sentence[: join.start()], sentence[join.end() :]
            if len(head.split()) >= MIN_PART_WORDS and len(tail.split()) > MIN_PART_WORDS:
                return head, tail
    return (sentence,)


def split_sentences(text: str) -> list[str]:
    pieces, _ = _cut(text, final=True)
    return [c for c in (clean_for_speech(p) for p in pieces) if c]


async def sentences(deltas: AsyncIterator[str]) -> AsyncIterator[str]:
    """Yield each sentence of a delta stream the moment its end is seen."""
    buffer = ""
    async for delta in deltas:
        if not delta:
            continue
        buffer += delta
        pieces, buffer = _cut(buffer, final=False)
        for piece in pieces:
            spoken = clean_for_speech(piece)
            if spoken:
                yield spoken
    pieces, _ = _cut(buffer, final=True)
    for piece in pieces:
        spoken = clean_for_speech(piece)
        if spoken:
            yield spoken


async def aiter_text(parts: Iterable[str]) -> AsyncIterator[str]:
    for part in parts:
        yield part
