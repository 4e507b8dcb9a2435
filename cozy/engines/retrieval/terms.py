"""A query's informative words: the one tokenizer behind keyword search and the plans.

Two stop-word lists, because the texts differ: memories are conversation ("did he
say", "would they"), so pronouns and auxiliaries carry nothing; documents keep more
of them (a heading like "What it is not" should still match "not").
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_WORD_RE = re.compile(r"\w+", re.UNICODE)

# documents: the short list
DOC_STOPWORDS = frozenset(
    """a an and are as at be by can do does for from how i in is it its me my of on or our
    so that the their there these this to was we what when where which who why will with
    you your""".split()  # noqa: SIM905 - a word list reads best as text
)
# conversation: the short list and the pronouns, auxiliaries and fillers of talk
STOPWORDS = DOC_STOPWORDS | frozenset(
    """but did had has have he her him his if into not she than them then they were whom
    would yours about after again all also am any been before being could just more most
    much only other over same should some such too very up down out off no""".split()  # noqa: SIM905
)
MAX_TERMS = 32


def query_terms(
    text: str,
    *,
    stopwords: frozenset[str] = STOPWORDS,
    fallback: bool = False,
    max_terms: int = MAX_TERMS,
) -> list[str]:
    """The distinct words of `text` (lower case), stop words and single letters dropped.

    `fallback`: when only stop words are left, keep them ("the" finds "the").
    """
    words = [w for w in _WORD_RE.findall(text.lower()) if len(w) > 1 or w.isdigit()]
    kept = [w for w in words if w not in stopwords]
    if not kept and fallback:
        kept = words
    return list(dict.fromkeys(kept))[:max_terms]


def match_expr(terms: Sequence[str]) -> str | None:
    """An FTS5 MATCH expression: the terms as quoted strings, OR-ed (no syntax injection)."""
    return " OR ".join(f'"{t}"' for t in terms) if terms else None
