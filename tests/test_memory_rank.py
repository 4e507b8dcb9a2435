"""The second ranking stage of memory search (memory/rank.py): each signal on its own,
then through LocalMemory.search on real SQLite with the local MiniLM embedder."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from pg_redis_helpers import pg_database

from cozy.engines.base import EngineContext
from cozy.engines.embed.local import LocalEmbedder
from cozy.engines.memory.local import LocalMemory
from cozy.engines.memory.rank import (
    Candidate,
    Weights,
    answer_bonus,
    asks,
    asks_when,
    boost_query_matches,
    boost_sessions,
    date_windows,
    entity_coverage,
    feedback_vector,
    query_entities,
    session_scores,
    tells_time,
)
from cozy.engines.memory.rows import MemoryRow
from cozy.engines.memory.types import TurnInput
from cozy.storage.store import Store


def ts(y: int, m: int, d: int, h: int = 12) -> float:
    return datetime(y, m, d, h, tzinfo=UTC).timestamp()


def test_query_entities_are_capitalised_words_inside_sentences() -> None:
    assert query_entities("What books has Tim read in Paris?") == ["tim", "paris"]
    assert query_entities("When did Tim visit Rome on Monday in June?") == ["tim", "rome"]
    # sentence openers and stop words are not entities; possessives keep the name
    assert query_entities("Did Anna call? When did Caroline's dog bark") == ["anna", "caroline"]
    assert query_entities("what did I say about Lisbon and LGBTQ events") == ["lisbon", "lgbtq"]
    assert query_entities("where did we go last summer?") == []
    assert entity_coverage(["tim", "paris"], "Tim: I loved PARIS in May") == 1.0
    assert entity_coverage(["tim", "paris"], "Timothy was in Paris") == 0.5  # whole words only
    assert entity_coverage([], "anything") == 0.0


def test_date_windows_follow_what_the_question_names() -> None:
    (day,) = date_windows("What did Nate cook on 9 November, 2022?")
    assert ts(2022, 11, 8) in day and ts(2022, 11, 10, 23) in day  # a day either side
    assert ts(2022, 11, 12) not in day and ts(2022, 11, 7) not in day
    (same,) = date_windows("what happened on November 9th 2022")
    assert same == day
    (month,) = date_windows("Where did Joanna travel in July 2022?")  # not also "2022"
    assert ts(2022, 7, 1, 0) in month and ts(2022, 8, 10) in month  # told shortly after
    assert ts(2022, 6, 30) not in month and ts(2022, 8, 20) not in month
    (year,) = date_windows("Which awards did John win in 2023?")
    assert ts(2023, 6, 1) in year and ts(2022, 12, 31) not in year
    assert date_windows("What did he say about 31 February, 2023 or 2023 at all?") == []
    assert date_windows("When did Caroline move?") == []


def test_when_questions_and_turns_that_say_when() -> None:
    assert asks_when("When did Melanie paint a sunrise?")
    assert asks_when("How long has Nate had his turtles?")
    assert not asks_when("What did Melanie paint?")
    assert tells_time("We painted it last week!") and tells_time("I've had them for 3 years")
    assert not tells_time("It was a lovely sunrise")


def test_query_matches_boost_in_proportion_to_the_best_score() -> None:
    fused = {"a": 1.0, "b": 0.8, "c": 0.5}
    cands = {
        "a": Candidate("we talked about work", "s1", ts(2022, 3, 1)),
        "b": Candidate("Tim went to Rome yesterday", "s2", ts(2022, 6, 12)),
        "c": Candidate("Tim said hi", "s3", ts(2022, 6, 13)),
    }
    w = Weights(entity=0.4, date=0.3, when=0.2)
    boost_query_matches(fused, cands, "When did Tim visit Rome in June 2022?", w)
    # b: both entities, in the window, says when; c: one entity, in the window
    assert fused == pytest.approx({"a": 1.0, "b": 0.8 + 0.4 + 0.3 + 0.2, "c": 0.5 + 0.2 + 0.3})
    untouched = {"a": 1.0, "b": 0.8}
    boost_query_matches(untouched, cands, "what about work?", w)
    assert untouched == {"a": 1.0, "b": 0.8}


def test_session_signal_lifts_turns_of_the_best_sessions() -> None:
    fused = {"a1": 0.5, "a2": 0.4, "b1": 0.6, "x": 0.3}
    sessions: dict[str, str | None] = {"a1": "A", "a2": "A", "b1": "B", "x": None}
    assert session_scores(fused, sessions, top=1) == {"A": 0.5, "B": 0.6}
    assert session_scores(fused, sessions, top=2) == pytest.approx({"A": 0.9, "B": 0.6})
    boost_sessions(fused, sessions, Weights(session=0.5, session_top=2))
    # best fused 0.6; session A scores 0.9 (the best), B 0.6
    assert fused == pytest.approx(
        {"a1": 0.5 + 0.3, "a2": 0.4 + 0.3, "b1": 0.6 + 0.3 * 0.6 / 0.9, "x": 0.3}
    )
    assert fused["a1"] > fused["b1"]  # two good turns outweigh one slightly better one
    off = {"a1": 0.5}
    boost_sessions(off, {"a1": "A"}, Weights(session=0.0))
    assert off == {"a1": 0.5}


def test_feedback_vector_moves_towards_the_first_hits() -> None:
    q = np.array([1.0, 0.0, 0.0], dtype=np.float32)
    hits = [np.array([0.0, 1.0, 0.0], dtype=np.float32), np.array([0.0, 0.0, 1.0])]
    moved = feedback_vector(q, hits, 0.5)
    assert moved is not None
    assert np.linalg.norm(moved) == pytest.approx(1.0)
    assert moved[1] == pytest.approx(moved[2]) and moved[0] > moved[1] > 0
    assert feedback_vector(q, hits, 0.0) is None
    assert feedback_vector(q, [np.ones(5, dtype=np.float32)], 0.5) is None  # other model


def _turn(mid: str, text: str, after: str | None) -> MemoryRow:
    return MemoryRow(
        mid, "u", "turn", text, "active", None, "s", [], None, 0.0, 0.0, None, {"next": after}
    )


def test_answer_bonus_goes_to_the_turn_after_a_question() -> None:
    assert asks("Is that your third one? ") and not asks("It is. Why?!.")
    rows = {
        "q": _turn("q", "Is that your third screenplay?", "a"),
        "s": _turn("s", "I wrote a screenplay.", "t"),
        "last": _turn("last", "Which one?", None),  # no turn after it yet
    }
    fused = {"q": 0.5, "s": 0.8, "last": 0.4}
    assert answer_bonus(["q", "s", "last"], fused, rows, 0.2) == {"a": pytest.approx(0.1)}
    assert answer_bonus(["s", "last"], fused, rows, 0.2) == {}  # "q" is not among the top
    assert answer_bonus(["q"], fused, rows, 0.0) == {}


# --- through the engine ------------------------------------------------------------------
@pytest.fixture(scope="module")
def minilm() -> LocalEmbedder:
    emb = LocalEmbedder({})
    if not emb.available():
        pytest.skip("all-MiniLM-L6-v2 not installed (run ./install.sh)")
    return emb


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, cozy_home: Path) -> Iterator[str]:
    if (
        request.param == "postgres"
    ):  # keyword lists from Postgres (retrieval/keyword.py), the same stage
        with pg_database() as url:
            yield url
    else:
        yield f"sqlite:///{cozy_home / 'rank.db'}"


@pytest.fixture
async def mem(db_url: str, minilm: LocalEmbedder) -> AsyncIterator[LocalMemory]:
    store = await Store.open(db_url)
    yield LocalMemory({"vector_timeout": 60}, EngineContext(store=store, embedder=minilm))
    await store.close()


async def test_engine_ranks_dated_questions(mem: LocalMemory) -> None:
    """Through LocalMemory.search on SQLite and on Postgres."""
    lake = "We rented a little boat on the lake"
    await mem.index_turns(
        [TurnInput("a0", "user", lake, ts(2023, 3, 2))], user_id="u", session_id="s-march"
    )
    await mem.index_turns(
        [TurnInput("b0", "user", lake, ts(2022, 6, 10))], user_id="u", session_id="s-june"
    )
    await mem.index_turns(
        [TurnInput("c0", "user", "The weather was fine", ts(2022, 6, 10))], user_id="u"
    )
    # the same text twice: only the date the question names tells them apart
    hits = await mem.search("Where did we take a boat in June 2022?", user_id="u", limit=2)
    assert [h.source_message_ids[0] for h in hits] == ["b0", "a0"]
    assert hits[0].score > hits[1].score
    hits = await mem.search("Where did we take a boat in March 2023?", user_id="u", limit=2)
    assert [h.source_message_ids[0] for h in hits] == ["a0", "b0"]
    # the feedback search reads the first hits' stored vectors (from the vector index)
    idx = await mem.index("u")
    assert idx.vector(hits[0].id) is not None and idx.vector("nope") is None


async def index_sessions(
    mem: LocalMemory, user: str, sessions: dict[str, list[str]], at: float
) -> None:
    """Each session's texts as its turns, message ids `session:position`."""
    for sid, texts in sessions.items():
        turns = [TurnInput(f"{sid}:{i}", "user", t, at) for i, t in enumerate(texts)]
        await mem.index_turns(turns, user_id=user, session_id=sid)


async def test_engine_session_signal(cozy_home: Path, minilm: LocalEmbedder) -> None:
    store = await Store.open(f"sqlite:///{cozy_home / 'sessions.db'}")
    # the neighbour spread these five sessions were written for (the default became 0.05,
    # chosen by LoCoMo's leave-one-out folds): at 0.05 the dinner turn's own score no
    # longer carries it past the other dinner with or without the session signal
    mem = LocalMemory(
        {"vector_timeout": 60, "neighbour_spread": 0.1},
        EngineContext(store=store, embedder=minilm),
    )
    sessions = {
        "s-violin": [
            "My sister started violin lessons",
            "Her violin teacher is very strict",
            "She practises every single evening",
            "Then we had pasta for dinner",
            "The pasta was too salty",
        ],
        "s-radio": ["A violin concert was on the radio", "We cooked dinner at home"],
        "s-yoga": ["We practise yoga every evening"],
    }
    await index_sessions(mem, "v", sessions, ts(2022, 9, 1))
    # the session with several violin turns lifts its dinner above the other dinner
    question = "What did we have for dinner after the violin lesson?"
    order = [h.source_message_ids[0] for h in await mem.search(question, user_id="v", limit=8)]
    assert order.index("s-violin:3") < order.index("s-radio:1")
    mem.rank_weights = Weights(session=0.0)
    order = [h.source_message_ids[0] for h in await mem.search(question, user_id="v", limit=8)]
    assert order.index("s-violin:3") > order.index("s-radio:1")
    # keyword-only search skips the stage and still answers
    kw = await mem.search("violin", user_id="v", mode="keyword", kinds=("turn",))
    own = {h.source_message_ids[0] for h in kw[:3]}  # then their neighbours (context)
    assert own == {"s-violin:0", "s-violin:1", "s-radio:0"}
    await store.close()


async def test_engine_answer_follows_its_question(cozy_home: Path, minilm: LocalEmbedder) -> None:
    store = await Store.open(f"sqlite:///{cozy_home / 'answers.db'}")
    mem = LocalMemory({"vector_timeout": 60}, EngineContext(store=store, embedder=minilm))
    turns = {
        "s-play": [
            "I printed the new screenplay this morning",
            "Is that your third screenplay?",
            "Yes! This one is about loss, identity and connection.",
            "Lovely, good luck with it",
        ],
        "s-misc": ["We talked about identity theft at work", "The printer jammed again"],
    }
    await index_sessions(mem, "w", turns, ts(2022, 5, 1))
    question = "What is the third screenplay about?"

    async def rank_of(mid: str) -> int:
        hits = await mem.search(question, user_id="w", limit=6, kinds=("turn",))
        return [h.source_message_ids[0] for h in hits].index(mid)

    with_answers = await rank_of("s-play:2")
    mem.rank_weights = Weights(answer=0.0)
    without = await rank_of("s-play:2")
    assert with_answers < without  # the answer climbs after the turn that asked
    await store.close()


def test_rank_options_set_the_weights_and_a_misspelt_one_is_refused(tmp_path: Path) -> None:
    """The second stage's options go through `memory.local`'s Options model (RankOptions):
    set ones reach `Weights`, unset ones keep its defaults, and a misspelt one in a real
    engines.yaml is an error at its line listing the allowed keys."""
    from cozy.core.errors import ConfigError
    from cozy.engines.config import load_engines_config

    f = tmp_path / "e.yaml"
    f.write_text("memory:\n  provider: local\n  entity_weight: 0.4\n  session_top: 2\n")
    config = load_engines_config([f])
    o = config.validate_options(LocalMemory.Options, config.memory.options, ("memory",))
    assert isinstance(o, LocalMemory.Options)
    assert Weights.of(o) == Weights(entity=0.4, session_top=2)
    f.write_text("memory:\n  provider: local\n  entity_wieght: 0.4\n")
    config = load_engines_config([f])
    with pytest.raises(ConfigError) as err:
        config.validate_options(LocalMemory.Options, config.memory.options, ("memory",))
    msg = str(err.value)
    assert f"{f}:3: memory.entity_wieght: unknown key (allowed: " in msg
    assert "entity_weight" in msg and "answer_spread" in msg
