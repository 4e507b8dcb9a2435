"""Second-stage ranking of memory search: signals added on top of the fused lists.

Hybrid search fuses BM25 and cosine (`search.rrf`); then, over the candidates of
that fusion, this module adds (each scaled by the best fused score, so weights
are relative and do not depend on `rrf_k`):

- **entity coverage**: the share of the question's named entities (capitalised
  words such as people or places, see `query_entities`) that a memory's text
  contains. A name in nearly every turn has a low IDF, so BM25 alone barely
  tells "what did Tim read" from a turn of someone else about reading;
- **dated questions**: a question naming a calendar date ("on 9 November, 2022",
  "in June 2022", "in 2023") favours memories that occurred in that window,
  because raw turns do not carry their date in the text;
- **"when" questions**: a question asking when or how long favours memories that
  say when ("yesterday", "last week", "for 3 years"): the turn that dates an event;
- **session signal**: a conversation session is scored by its best candidates,
  and every candidate shares its session's score. The answer to a question
  usually sits in the session the question is about, next to other turns that
  match it (score sessions, then turns inside the best ones);
- **feedback vector** (`feedback_vector`): the query vector moved towards the
  best first-pass hits (Rocchio-style pseudo-relevance feedback) for a second
  vector search, which finds turns that say the same in other words;
- **answers follow questions** (`answer_bonus`): a strong candidate that asks a
  question lends part of its score to the turn right after it, where the answer
  usually is ("Is that your third one?" / "Yep! It's about loss and identity").

Weights were chosen on half of the LoCoMo-dev conversations and checked on the
other half (bench/locomo_eval.py `--split`).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from cozy.engines.base import EngineOptions
from cozy.engines.retrieval.terms import STOPWORDS

if TYPE_CHECKING:
    import numpy as np

    from cozy.engines.memory.repo import MemoryRow

Ranked = list[tuple[str, float]]

# month and day names are dates, not entities (dated questions have their own signal)
_CALENDAR = frozenset(
    n.lower() for n in [*calendar.month_name, *calendar.month_abbr, *calendar.day_name] if n
)
_TOKEN_RE = re.compile(r"[\w'’]+|[.!?;:]", re.UNICODE)
_WORD_RE = re.compile(r"\w+", re.UNICODE)


def query_entities(text: str, *, max_entities: int = 8) -> list[str]:
    """The lower-cased capitalised words of `text` that do not open a sentence.

    A light stand-in for named-entity recognition (an NER model would be a
    heavy dependency for the search path): "What books has Tim read in Paris?"
    gives ["tim", "paris"]. Stop words ("I", "What") are never entities.
    """
    out: list[str] = []
    opening = True
    for tok in _TOKEN_RE.findall(text):
        if tok in ".!?;:":
            opening = True
            continue
        word = tok.strip("'’").split("'")[0].split("’")[0]
        low = word.lower()
        if not opening and word[:1].isupper() and low not in STOPWORDS and low not in _CALENDAR:
            out.append(low)
        opening = False
    return list(dict.fromkeys(out))[:max_entities]


def entity_coverage(entities: Sequence[str], text: str) -> float:
    """Share of `entities` that occur as words of `text` (0.0 when there are none)."""
    if not entities:
        return 0.0
    words = set(_WORD_RE.findall(text.lower()))
    return sum(e in words for e in entities) / len(entities)


# --- dates ---------------------------------------------------------------------
_WHEN_RE = re.compile(r"^\W*(when|how long|since when|what (year|month|day|date|time))\b", re.I)
_TIME_RE = re.compile(
    r"\b(yesterday|today|tonight|tomorrow|last|next|ago|recently|since|weekend|days?|weeks?"
    r"|months?|years?|monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b",
    re.I,
)


def asks_when(question: str) -> bool:
    return bool(_WHEN_RE.search(question))


def tells_time(text: str) -> bool:
    """The text says when something happened (relative time words, weekdays)."""
    return bool(_TIME_RE.search(text))


# A few explicit patterns rather than a date library: a fuzzy parser returns one
# datetime with the missing parts filled in, where this needs to know whether the
# question named a day, a month or a year (the width of the window).
_MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_name) if m}
_MONTHS |= {m.lower(): i for i, m in enumerate(calendar.month_abbr) if m}
_MON = "|".join(sorted(_MONTHS, key=len, reverse=True))
_DAY = r"(\d{1,2})(?:st|nd|rd|th)?"
_YEAR = r"((?:19|20)\d\d)"
_DATE_PATTERNS: list[tuple[str, re.Pattern[str], tuple[int | None, int | None, int]]] = [
    ("day", re.compile(rf"\b{_DAY}\s+(?:of\s+)?({_MON})\.?,?\s*{_YEAR}\b", re.I), (1, 2, 3)),
    ("day", re.compile(rf"\b({_MON})\.?\s+{_DAY},?\s*{_YEAR}\b", re.I), (2, 1, 3)),
    ("month", re.compile(rf"\b({_MON})\.?,?\s+(?:of\s+)?{_YEAR}\b", re.I), (None, 1, 2)),
    ("year", re.compile(rf"\b(?:in|of|during|since|by|from)\s+{_YEAR}\b", re.I), (None, None, 1)),
]
DAY_SLACK = timedelta(days=1)  # a day named in the question: the day before / after too
LATER = timedelta(days=14)  # a month or year: also what was told shortly after it


@dataclass(frozen=True, slots=True)
class Window:
    start: float
    end: float

    def __contains__(self, ts: object) -> bool:
        return isinstance(ts, int | float) and self.start <= ts < self.end


def date_windows(text: str) -> list[Window]:
    """The time windows (UTC timestamps) of the calendar dates written in `text`."""
    out: list[Window] = []
    spans: list[tuple[int, int]] = []
    for kind, pattern, (day_at, month_at, year_at) in _DATE_PATTERNS:
        for m in pattern.finditer(text):
            if any(a < m.end() and m.start() < b for a, b in spans):
                continue  # "9 November, 2022" is not also "November 2022"
            spans.append(m.span())
            year = int(m.group(year_at))
            month = _MONTHS[m.group(month_at).lower()] if month_at else 1
            try:
                if kind == "day" and day_at is not None:
                    day = datetime(year, month, int(m.group(day_at)), tzinfo=UTC)
                    start, end = day - DAY_SLACK, day + timedelta(days=1) + DAY_SLACK
                elif kind == "month":
                    start = datetime(year, month, 1, tzinfo=UTC)
                    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC) + LATER
                else:
                    start = datetime(year, 1, 1, tzinfo=UTC)
                    end = datetime(year + 1, 1, 1, tzinfo=UTC) + LATER
            except ValueError:  # "31 February"
                continue
            out.append(Window(start.timestamp(), end.timestamp()))
    return out


# --- the second stage --------------------------------------------------------------
@dataclass(slots=True)
class Candidate:
    """What the second stage needs to know about a fused candidate."""

    text: str
    session_id: str | None
    occurred_at: float | None


@dataclass(slots=True)
class Weights:
    entity: float = 0.3
    date: float = 0.3
    when: float = 0.3
    session: float = 0.5
    session_top: int = 1  # a session's score: the sum of its best `session_top` candidates
    feedback: float = 0.5  # 0: no second vector search
    feedback_docs: int = 5  # first-pass hits the feedback vector moves towards
    answer: float = 0.2  # share of a question turn's score lent to the turn after it

    @classmethod
    def of(cls, o: RankOptions) -> Weights:
        """The weights `o` sets, each unset one at its default."""
        d = cls()

        def pick(value: float | None, default: float) -> float:
            return default if value is None else value

        return cls(
            entity=pick(o.entity_weight, d.entity),
            date=pick(o.date_weight, d.date),
            when=pick(o.when_weight, d.when),
            session=pick(o.session_weight, d.session),
            session_top=d.session_top if o.session_top is None else o.session_top,
            feedback=pick(o.feedback, d.feedback),
            feedback_docs=d.feedback_docs if o.feedback_docs is None else o.feedback_docs,
            answer=pick(o.answer_spread, d.answer),
        )


class RankOptions(EngineOptions):
    """The second stage's options (part of `memory.local`'s in engines.yaml); unset:
    the `Weights` defaults, kept in one place there."""

    entity_weight: float | None = None
    date_weight: float | None = None
    when_weight: float | None = None
    session_weight: float | None = None
    session_top: int | None = None
    feedback: float | None = None
    feedback_docs: int | None = None
    answer_spread: float | None = None


def boost_query_matches(
    fused: dict[str, float],
    candidates: Mapping[str, Candidate | MemoryRow],
    query: str,
    w: Weights,
) -> None:
    """Entity coverage, dated-question windows and "when" answers, added to `fused`."""
    if not fused:
        return
    entities = query_entities(query) if w.entity > 0 else []
    windows = date_windows(query) if w.date > 0 else []
    when = w.when > 0 and asks_when(query)
    if not entities and not windows and not when:
        return
    best = max(fused.values())
    for mid, cand in candidates.items():
        if mid not in fused:
            continue
        bonus = w.entity * entity_coverage(entities, cand.text)
        if windows and any(cand.occurred_at in win for win in windows):
            bonus += w.date
        if when and tells_time(cand.text):
            bonus += w.when
        fused[mid] += best * bonus


def session_scores(
    fused: Mapping[str, float], sessions: Mapping[str, str | None], top: int = 1
) -> dict[str, float]:
    """A session's score: the sum of the fused scores of its best `top` candidates."""
    by: dict[str, list[float]] = {}
    for mid, score in fused.items():
        sid = sessions.get(mid)
        if sid is not None:
            by.setdefault(sid, []).append(score)
    return {sid: sum(sorted(v, reverse=True)[: max(1, top)]) for sid, v in by.items()}


def boost_sessions(fused: dict[str, float], sessions: Mapping[str, str | None], w: Weights) -> None:
    """Every candidate gains `w.session` x (its session's score / the best session's)."""
    if w.session <= 0 or not fused:
        return
    scores = session_scores(fused, sessions, w.session_top)
    if not scores:
        return
    top, best = max(scores.values()), max(fused.values())
    if top <= 0:
        return
    for mid in fused:
        sid = sessions.get(mid)
        if sid is not None:
            fused[mid] += w.session * best * scores[sid] / top


def asks(text: str) -> bool:
    """The turn ends with a question."""
    return text.rstrip().endswith("?")


def answer_bonus(
    top: Sequence[str], fused: Mapping[str, float], rows: Mapping[str, MemoryRow], weight: float
) -> dict[str, float]:
    """What each turn right after a question among `top` gains: `weight` x its score."""
    bonus: dict[str, float] = {}
    if weight <= 0:
        return bonus
    for mid in top:
        row = rows.get(mid)
        if row is None:
            continue
        after = row.metadata.get("next")
        if after and asks(row.text):
            bonus[after] = bonus.get(after, 0.0) + weight * fused.get(mid, 0.0)
    return bonus


def feedback_vector(
    query: Sequence[float] | np.ndarray, hits: Iterable[np.ndarray], alpha: float
) -> np.ndarray | None:
    """The unit query vector moved towards the mean of the first-pass `hits` vectors."""
    import numpy as np

    vecs = [np.asarray(h, dtype=np.float32) for h in hits]
    q = np.asarray(query, dtype=np.float32)
    vecs = [v for v in vecs if v.shape == q.shape]
    if alpha <= 0 or not vecs:
        return None
    moved = q + alpha * np.mean(vecs, axis=0)
    norm = float(np.linalg.norm(moved))
    return moved / norm if norm > 0 else None
