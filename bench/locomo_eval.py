"""Retrieval quality of memory.local on the LoCoMo dev split (no language model needed).

Each conversation is ingested turn by turn, session by session, as one user's raw
turns (what the memory engine indexes after every chat turn); then every question
of categories 1-4 retrieves the top k turns. Scores: turn recall@k (share of the
evidence turns found) and hit@k (questions with at least one evidence turn), per
category and overall, for hybrid search and the BM25-only / vector-only baselines
measured in the same run.

    .venv/bin/python bench/locomo_eval.py [--data DIR] [--limit-convs N] [--embed local|none]
        [--plain] [--split] [--folds] [--variant hybrid:key=value,...] [--precision int8]

Turns are indexed with their neighbours (memory/turns.py); `--plain` also ingests
every conversation with `turn_context: false` (each turn alone) and adds those BM25
and vector baselines to the table. `hybrid` is what the engine runs; `fusion` is the
same search without the second ranking stage of memory/rank.py. The second stage's
weights were chosen on conversations 1, 3 and 5 (sorted by name); `--split` scores
that half and the held-out half (2 and 4) apart. A variant sets engine attributes
or second-stage weights, e.g. `hybrid:session=0,feedback=0`.

`--folds` evaluates the tuning itself, leave one conversation out: every weight and
threshold of hybrid search at 0, half and twice its default (one at a time) and every
`--variant`, the setting with the best R@10 on four conversations scored on the fifth;
it prints the fold table (chosen setting, train and held-out R@10 per fold, the mean
and spread of the held-out scores, and the gap between the dev score and that mean),
and each variant's R@10 against the defaults conversation by conversation.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

# shared/ beside the checkout, or beside a folder of worktrees (the nearest one up)
DATA = next(
    (d / "shared" / "data" / "locomo-dev" for d in Path(__file__).resolve().parents[1:]
     if (d / "shared" / "data" / "locomo-dev").is_dir()),
    Path(__file__).resolve().parents[2] / "shared" / "data" / "locomo-dev",
)  # fmt: skip
KS = (5, 10, 20)
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}
OPTIONS: dict[str, Any] = {}  # memory.local options under test (--option key=value)
# hybrid fusion without the second stage of memory/rank.py (the method before it)
FUSION = "hybrid:entity=0,date=0,when=0,session=0,feedback=0,answer=0"


class CachedEmbedder:
    """The local embedder with an on-disk cache keyed by text, so reruns are fast."""

    provider_name = "local"
    model_name = "all-MiniLM-L6-v2"

    def __init__(self, inner: Any, directory: Path) -> None:
        import hashlib

        self.inner = inner
        self._hash = lambda t: hashlib.sha1(t.encode()).hexdigest()
        self.path = directory / "vectors.npz"
        self.cache: dict[str, list[float]] = {}
        if self.path.is_file():
            import numpy as np

            data = np.load(self.path)
            self.cache = {k: data[k].tolist() for k in data.files}

    async def embed(self, texts: list[str]) -> list[list[float]]:
        missing = [t for t in dict.fromkeys(texts) if self._hash(t) not in self.cache]
        if missing:
            for t, v in zip(missing, await self.inner.embed(missing), strict=True):
                self.cache[self._hash(t)] = v
        return [self.cache[self._hash(t)] for t in texts]

    def save(self) -> None:
        import numpy as np

        self.path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(self.path, **{k: np.asarray(v, dtype=np.float32) for k, v in self.cache.items()})


def session_time(text: str) -> float | None:
    for fmt in ("%I:%M %p on %d %B, %Y", "%H:%M on %d %B, %Y"):
        try:
            return datetime.strptime(text.strip(), fmt).timestamp()
        except ValueError:
            continue
    return None


def evidence(item: dict[str, Any]) -> set[str]:
    out: set[str] = set()
    for ev in item.get("evidence") or []:
        for part in str(ev).replace(",", ";").split(";"):
            part = part.strip()
            if part:
                out.add(part)
    return out


def turn_text(session: dict[str, Any], turn: dict[str, Any]) -> str:
    """How a turn is indexed: the speaker's name and the session date travel with it."""
    date = session.get("date_time", "")
    day = date.split(" on ", 1)[-1] if " on " in date else date
    return f"[{day}] {turn['speaker']}: {turn['text']}"


async def run_conv(
    path: Path, embedder: Any, modes: list[str], options: dict[str, Any] | None = None
) -> tuple[dict[str, dict[str, Any]], int, float]:
    from cozy.engines.base import EngineContext
    from cozy.engines.memory.local import LocalMemory
    from cozy.engines.memory.types import TurnInput
    from cozy.storage.store import Store

    conv = json.loads(await asyncio.to_thread(path.read_text))
    tmp = Path(tempfile.mkdtemp(prefix="locomo-"))
    store = await Store.open(f"sqlite:///{tmp / 'eval.db'}")
    mem = LocalMemory(
        {"vector_timeout": 120, "embeddings": embedder is not None, **OPTIONS, **(options or {})},
        EngineContext(store=store, embedder=embedder),
    )
    user = path.stem
    n_turns = 0
    started = time.perf_counter()
    for session in conv["sessions"]:
        ts = session_time(session.get("date_time", ""))
        turns = [
            TurnInput(t["dia_id"], "user", turn_text(session, t), ts) for t in session["turns"]
        ]
        n_turns += len(turns)
        await mem.index_turns(turns, user_id=user, session_id=f"s{session['id']}")
    ingest_s = time.perf_counter() - started
    # memory id -> dia_id
    rows = await mem.repo.list_rows(user, kinds=("turn",), limit=None)
    dia = {r.id: r.metadata.get("message_id") for r in rows}
    results: dict[str, dict[str, Any]] = {m: defaultdict(list) for m in modes}
    defaults = {k: getattr(mem, k) for k in ("keyword_weight", "rrf_k", "neighbour_spread")}
    stage = dataclasses.replace(mem.rank_weights)  # the second stage (memory/rank.py)
    for item in conv["qa"]:
        cat = item.get("category")
        if cat not in CATEGORIES:
            continue
        gold = evidence(item)
        if not gold:
            continue
        for mode in modes:
            name, _, opts = mode.partition(":")
            for key, value in defaults.items():
                setattr(mem, key, value)
            mem.rank_weights = dataclasses.replace(stage)
            for pair in filter(None, opts.split(",")):
                key, _, value = pair.partition("=")
                if hasattr(mem.rank_weights, key):
                    field = type(getattr(mem.rank_weights, key))
                    setattr(mem.rank_weights, key, field(float(value)))
                else:
                    setattr(mem, key, float(value))
            hits = await mem.search(
                str(item["question"]), user_id=user, limit=max(KS), kinds=("turn",), mode=name
            )
            got = [dia.get(h.id) for h in hits]
            for k in KS:
                found = gold & set(got[:k])
                results[mode][(cat, k, "recall")].append(len(found) / len(gold))
                results[mode][(cat, k, "hit")].append(1.0 if found else 0.0)
    await store.close()
    return results, n_turns, ingest_s


def table(all_results: dict[str, dict[Any, list[float]]]) -> str:
    lines = []
    head = f"{'method':<11} {'category':<12} {'n':>4} " + " ".join(
        f"{'R@' + str(k):>6} {'hit@' + str(k):>7}" for k in KS
    )
    lines.append(head)
    lines.append("-" * len(head))
    for mode, res in all_results.items():
        for cat in [*CATEGORIES, "all"]:
            cells = []
            n = 0
            for k in KS:
                if cat == "all":
                    rec = [v for c in CATEGORIES for v in res.get((c, k, "recall"), [])]
                    hit = [v for c in CATEGORIES for v in res.get((c, k, "hit"), [])]
                else:
                    rec = res.get((cat, k, "recall"), [])
                    hit = res.get((cat, k, "hit"), [])
                n = len(rec)
                r = sum(rec) / n if n else 0.0
                h = sum(hit) / n if n else 0.0
                cells.append(f"{r:>6.3f} {h:>7.3f}")
            name = CATEGORIES.get(cat, "all") if cat != "all" else "ALL"  # type: ignore[call-overload]
            lines.append(f"{mode:<11} {name:<12} {n:>4} " + " ".join(cells))
        lines.append("")
    return "\n".join(lines)


# --folds: every weight and threshold of hybrid search, each at 0, half and twice its
# default (one at a time, the others at their defaults): the choices a tuning run makes
TUNED = {
    "keyword_weight": 1.5,
    "rrf_k": 10.0,
    "neighbour_spread": 0.05,
    "entity": 0.3,
    "date": 0.3,
    "when": 0.3,
    "session": 0.5,
    "feedback": 0.5,
    "answer": 0.2,
}


def grid() -> list[str]:
    modes = ["hybrid"]
    for key, default in TUNED.items():
        for factor in (0.0, 0.5, 2.0):
            if key == "rrf_k" and factor == 0.0:
                continue  # k = 0 is a different fusion, not a weaker one
            modes.append(f"hybrid:{key}={default * factor:g}")
    return modes


def recall_at(res: dict[Any, list[float]], k: int = 10) -> tuple[float, int]:
    vals = [v for c in CATEGORIES for v in res.get((c, k, "recall"), [])]
    return (sum(vals) / len(vals) if vals else 0.0), len(vals)


def fold_table(per_conv: dict[str, dict[str, dict[Any, list[float]]]], modes: list[str]) -> str:
    """Leave one conversation out: the setting with the best R@10 on the other
    conversations (pooled questions), scored on the one left out."""
    import statistics

    def pooled(convs: list[str], mode: str) -> float:
        merged: dict[Any, list[float]] = defaultdict(list)
        for c in convs:
            for key, vals in per_conv[c][mode].items():
                merged[key].extend(vals)
        return recall_at(merged)[0]

    names = sorted(per_conv)
    lines = [
        f"{'held out':<14} {'chosen on the other conversations':<36} {'train':>6} "
        f"{'held-out':>8} {'default':>8}",
        "-" * 76,
    ]
    held, default_held = [], []
    for out in names:
        rest = [c for c in names if c != out]
        best = max(modes, key=lambda m: (pooled(rest, m), m == "hybrid"))
        score = recall_at(per_conv[out][best])[0]
        base = recall_at(per_conv[out]["hybrid"])[0]
        held.append(score)
        default_held.append(base)
        chosen = best.partition(":")[2] or "defaults"
        lines.append(
            f"{out:<14} {chosen:<36} {pooled(rest, best):>6.3f} {score:>8.3f} {base:>8.3f}"
        )
    dev = pooled(names, "hybrid")
    mean = statistics.mean(held)
    # the held-out scores pooled over questions, like the dev figure (the mean above
    # weighs each conversation alike)
    held_pooled: dict[Any, list[float]] = defaultdict(list)
    for out in names:
        rest = [c for c in names if c != out]
        best = max(modes, key=lambda m: (pooled(rest, m), m == "hybrid"))
        for key, vals in per_conv[out][best].items():
            held_pooled[key].extend(vals)
    lines.append("-" * 76)
    lines.append(
        f"R@10 held out: mean {mean:.3f}, spread across folds {max(held) - min(held):.3f} "
        f"(sd {statistics.pstdev(held):.3f}); defaults held out: mean "
        f"{statistics.mean(default_held):.3f}"
    )
    lines.append(
        f"held out, pooled over questions: {recall_at(held_pooled)[0]:.3f}; dev (all "
        f"conversations, the defaults tuned on them): {dev:.3f}; dev - held-out mean = "
        f"{dev - mean:+.3f}"
    )
    return "\n".join(lines)


def variant_table(
    per_conv: dict[str, dict[str, dict[Any, list[float]]]], variants: list[str]
) -> str:
    """R@10 of each variant and of the defaults on every conversation: a method change
    is kept only if it wins on conversations, not just pooled."""
    names = sorted(per_conv)
    lines = [f"{'variant':<40} " + " ".join(f"{n:>8}" for n in names) + "     wins"]
    base = [recall_at(per_conv[n]["hybrid"])[0] for n in names]
    lines.append(f"{'hybrid (defaults)':<40} " + " ".join(f"{b:>8.3f}" for b in base))
    for v in variants:
        got = [recall_at(per_conv[n][v])[0] for n in names]
        wins = sum(g > b + 1e-9 for g, b in zip(got, base, strict=True))
        losses = sum(g < b - 1e-9 for g, b in zip(got, base, strict=True))
        cells = " ".join(f"{g - b:>+8.3f}" for g, b in zip(got, base, strict=True))
        lines.append(f"{v[:40]:<40} {cells}  {wins} up, {losses} down")
    return "\n".join(lines)


def print_folds(
    per_conv: dict[str, dict[str, dict[Any, list[float]]]], variants: list[str]
) -> None:
    print("\n--- leave one conversation out (R@10 over categories 1-4) ---")
    print(fold_table(per_conv, [*grid(), *(v for v in variants if v not in grid())]))


async def setup(args: argparse.Namespace) -> tuple[Any, list[str]]:
    """The (cached) embedder and the search modes the run compares."""
    if args.embed != "local":
        return None, ["keyword"]
    from cozy.engines.embed.local import LocalEmbedder

    inner = LocalEmbedder({"precision": args.precision})
    await inner.initialize()
    modes = ["keyword", "vector", FUSION, "hybrid", *args.variant]
    if args.folds:
        modes += [m for m in grid() if m not in modes]
    cache = args.cache if args.precision == "fp32" else args.cache / args.precision
    return CachedEmbedder(inner, cache), modes


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--limit-convs", type=int, default=None)
    ap.add_argument("--embed", choices=["local", "none"], default="local")
    ap.add_argument(
        "--precision", choices=["fp32", "int8"], default="fp32", help="embed.options.precision"
    )
    ap.add_argument(
        "--variant",
        action="append",
        default=[],
        help="extra hybrid run with engine options, e.g. hybrid:keyword_weight=2,rrf_k=20",
    )
    ap.add_argument("--plain", action="store_true", help="add turn-alone baselines")
    ap.add_argument(
        "--split",
        action="store_true",
        help="also score the two halves apart: conversations 1, 3, 5 (where the second-stage "
        "weights were chosen) and 2, 4 (held out)",
    )
    ap.add_argument(
        "--folds",
        action="store_true",
        help="leave one conversation out: every weight of hybrid search at 0, half and twice "
        "its default, chosen on four conversations and scored on the fifth",
    )
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "cozy-locomo")
    args = ap.parse_args()
    if args.folds and args.embed != "local":
        ap.error("--folds needs the embedder (--embed local)")
    files = sorted(args.data.glob("conv-*.json"))[: args.limit_convs]
    if not files:
        ap.error(f"no conv-*.json in {args.data}: pass --data DIR (shared/data/locomo-dev)")
    await evaluate(args, files)


async def evaluate(args: argparse.Namespace, files: list[Path]) -> None:
    embedder, modes = await setup(args)
    per_conv: dict[str, dict[str, dict[Any, list[float]]]] = {}
    plain = [m for m in ("keyword", "vector") if m in modes] if args.plain else []
    merged: dict[str, dict[Any, list[float]]] = {
        m: defaultdict(list) for m in [*modes, *(f"{p}-plain" for p in plain)]
    }
    halves: dict[str, dict[str, dict[Any, list[float]]]] = {
        h: {m: defaultdict(list) for m in modes} for h in ("tuning", "held-out")
    }
    total_turns, total_s = 0, 0.0
    for i, path in enumerate(files):
        res, n, s = await run_conv(path, embedder, modes)
        per_conv[path.stem] = res
        total_turns += n
        total_s += s
        for mode in modes:
            for key, vals in res[mode].items():
                merged[mode][key].extend(vals)
                halves["held-out" if i % 2 else "tuning"][mode][key].extend(vals)
        print(f"{path.name}: {n} turns ingested in {s:.1f}s", flush=True)
        if embedder is not None:
            embedder.save()  # after each conversation: an interrupted run keeps its vectors
        if plain:
            res, _n, _s = await run_conv(path, embedder, plain, {"turn_context": False})
            for mode in plain:
                for key, vals in res[mode].items():
                    merged[f"{mode}-plain"][key].extend(vals)
    if embedder is not None:
        embedder.save()
    names = {"keyword": "bm25", "vector": "vector", "hybrid": "hybrid", FUSION: "fusion"}
    names |= {"keyword-plain": "bm25-plain", "vector-plain": "vec-plain"}
    print()
    shown = [m for m in modes if not args.folds or m not in grid() or m == "hybrid"]
    for i, m in enumerate(shown):
        if m not in names:
            names[m] = f"v{i - 3}"
            print(f"v{i - 3} = {m}")
    print("fusion = BM25 + vector RRF and neighbour spreading only (no memory/rank.py stage)")
    print(table({names[m]: merged[m] for m in merged if m in shown or m.endswith("-plain")}))
    if args.split:
        for half, res in halves.items():
            print(f"--- {half} half ---")
            print(table({names[m]: res[m] for m in modes}))
    print(f"ingest: {total_turns} turns in {total_s:.1f}s ({total_turns / total_s:.1f} turns/s)")
    if args.variant:
        print("\n--- each --variant against the defaults, R@10 conversation by conversation ---")
        print(variant_table(per_conv, args.variant))
    if args.folds:
        print_folds(per_conv, args.variant)


if __name__ == "__main__":
    asyncio.run(main())
