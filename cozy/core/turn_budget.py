"""How much of the model's window a turn may fill, and what happens when it does not fit.

The context stage asks `window()` for the token limit, builds the bundle within it,
then `check_fit()` either notes an assumed window or refuses the prompt with the fix
that works, and `plan_summary()` queues a summary of what the prompt left out.
"""

from __future__ import annotations

from cozy.core.budget import TokenEstimator
from cozy.core.context import ContextBundle
from cozy.core.errors import ContextTooLarge
from cozy.core.persist import summary_job
from cozy.core.personalities import Personality
from cozy.core.turn import Turn
from cozy.core.types import Message
from cozy.core.windows import ContextWindows
from cozy.engines.base import Route


async def window(
    turn: Turn,
    route: Route,
    personality: Personality,
    windows: ContextWindows,
    token_budget: int | None,
    reserve_answer_tokens: int,
) -> tuple[int, int]:
    """The token limit for this turn and what is reserved for the answer."""
    provider = route.label.split(":", 1)[0]
    size, source = await windows.resolve(route.engine, provider, route.model)
    if personality.context_window:
        size, source = personality.context_window, "personality"
    limit = min(size, personality.token_budget or token_budget or size)
    reserve = min(reserve_answer_tokens, limit // 4)
    turn.tokens = {"window": size, "window_source": source, "limit": limit, "reserve": reserve}
    return limit, reserve


def check_fit(turn: Turn, bundle: ContextBundle, route: Route) -> None:
    """Refuse a prompt that cannot fit, with the fix that works for why it cannot;
    with an unknown window, send it and let the server decide (no guessed cap)."""
    if not bundle.token_budget.get("over_budget"):
        return
    size, source = turn.tokens["window"], turn.tokens["window_source"]
    if source == "default":
        bundle.metadata["degraded"] = True
        bundle.metadata["degrade_reasons"].append(
            f"the context window of {route.label} is unknown (assumed {size:,} tokens "
            "to trim history); set it with `ai.context_windows` in engines.yaml"
        )
        return
    used, budget = bundle.token_budget["used"], bundle.token_budget["limit"]
    raise too_large(turn, route, used, budget)


def check_question(turn: Turn, route: Route, estimator: TokenEstimator, system: str) -> None:
    """Refuse, before anything is stored, a question that no trimming can fit: the
    personality's prompt and the question alone are over the budget (`window()` ran)."""
    if turn.tokens["window_source"] == "default":
        return  # unknown window: `check_fit` sends it and lets the server decide
    needed = estimator.messages([Message("system", system), Message("user", turn.prompt)])
    budget = max(turn.tokens["limit"] - turn.tokens["reserve"], 256)
    if needed > budget:
        raise too_large(turn, route, needed, budget)


def too_large(turn: Turn, route: Route, used: int, budget: int) -> ContextTooLarge:
    """The refusal, naming the fix that works for why the prompt cannot fit."""
    size, source = turn.tokens["window"], turn.tokens["window_source"]
    limit, reserve = turn.tokens["limit"], turn.tokens["reserve"]
    if limit < size:  # cozy's own cap, not the model, is what is too small
        hint = (
            f"raise `context.token_budget` in engines.yaml (now {limit:,}; removing it "
            f"makes the budget the model's window, {size:,}) or the personality's "
            "token_budget"
        )
    else:
        hint = (
            "shorten the prompt or add the text with `cozy knowledge add`; if the model "
            f"takes more than {size:,} tokens, say so in engines.yaml: "
            f"`ai: {{context_windows: {{'{route.label}': N}}}}`"
        )
    return ContextTooLarge(
        f"the prompt needs about {used:,} tokens but the context budget is "
        f"{budget:,} ({route.label} window {size:,} from "
        f"{source}, cozy's limit {limit:,}, minus {reserve:,} reserved for the answer)",
        hint=hint,
    )


def plan_summary(turn: Turn, bundle: ContextBundle, route: Route) -> None:
    """Queue a summary job when messages left out of the prompt are not summarised
    (written in the persist transaction: one write per turn)."""
    if turn.session is None:
        return
    meta = bundle.metadata
    if turn.summary is not None:
        meta["summary"] = {
            "id": turn.summary.id,
            "messages": turn.summary.message_count,
            "used": bool(bundle.summary),
        }
    dropped = bundle.token_budget.get("trimmed", {}).get("messages", 0)
    covered = turn.summary.last_message_id if turn.summary else ""
    gap = turn.older_exists and (turn.window_first_id or "") > covered
    if gap or dropped:
        turn.summary_job = summary_job(
            turn.session.id,
            turn.req.caller.user_id,
            route.label,
            keep_recent=len(bundle.recent_messages),
        )
        meta["summary_requested"] = True
