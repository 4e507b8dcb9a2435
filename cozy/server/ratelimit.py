"""Rate limits and budgets per API key, per user and per client IP.

Requests and tokens per minute, and budgets (tokens or spend per UTC day and
calendar month), all counted in fixed windows in a shared store, so every worker
process (and, with Redis, every host) sees the same counts (the stores: counters.py).
A user's budget stored in the database (`cozy users set-budget`) arrives with the
authenticated principal and replaces that user's meters (`use_stored_budget`).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from cozy.core.errors import CozyError
from cozy.server.counters import CounterStore, DiskCounterStore, MemoryCounterStore

if TYPE_CHECKING:  # the storage layer stays unimported until the server runs
    from cozy.storage.users import BudgetOverride

WINDOW = 60.0

__all__ = ["CounterStore", "DiskCounterStore", "MemoryCounterStore", "RateLimiter"]


class RateLimited(CozyError):
    http_status = 429
    code = "rate_limit_exceeded"
    error_type = "rate_limit_error"

    def __init__(self, message: str, *, retry_after: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


class QuotaExceeded(RateLimited):
    """A budget (tokens or spend per day/month) is used up: OpenAI's `insufficient_quota`."""

    code = "insufficient_quota"
    error_type = "insufficient_quota"


@dataclass(slots=True, frozen=True)
class Budget:
    """Tokens and spend (USD, needs `ai.prices`) per UTC day and calendar month."""

    tokens_day: int | None = None
    tokens_month: int | None = None
    usd_day: float | None = None
    usd_month: float | None = None


@dataclass(slots=True)
class Limits:
    rpm: int = 600
    tpm: int = 200_000
    ip_rpm: int = 1200
    user_rpm: int | None = None  # per user (all their keys together); None: as per key
    user_tpm: int | None = None
    key_budget: Budget = field(default_factory=Budget)
    user_budget: Budget = field(default_factory=Budget)
    user_budgets: dict[str, Budget] = field(default_factory=dict)  # per user id: overrides


def with_stored(base: Budget, stored: BudgetOverride) -> Budget:
    """A user's stored budget over the server's: each field it sets wins (0: none)."""

    def pick(mine: float | None, theirs: float | None) -> float | None:
        return theirs if mine is None else mine

    days, months = (
        pick(stored.tokens_day, base.tokens_day),
        pick(stored.tokens_month, base.tokens_month),
    )
    return Budget(
        None if days is None else int(days),
        None if months is None else int(months),
        pick(stored.usd_day, base.usd_day),
        pick(stored.usd_month, base.usd_month),
    )


@dataclass(slots=True, frozen=True)
class _Meter:
    name: str  # for messages: "tokens per minute", "tokens today", ...
    limit: int  # tokens, or micro-dollars for spend
    period: str  # minute | day | month
    usd: bool
    quota: bool  # a budget (insufficient_quota) rather than a rate limit
    setting: str


@dataclass(slots=True)
class Reservation:
    """What `reserve` added, per counter key, to be settled with the real usage."""

    tokens: int
    micro_usd: int
    keys: list[tuple[str, bool, float]] = field(default_factory=list)  # key, usd, ttl


MICRO = 1_000_000


def period_window(period: str, now: float) -> tuple[str, int, float]:
    """(window label, seconds until it ends, counter ttl) for a UTC period."""
    if period == "minute":
        start = int(now // WINDOW)
        return str(start), max(1, math.ceil((start + 1) * WINDOW - now)), WINDOW * 2
    day = datetime.fromtimestamp(now, UTC)
    if period == "day":
        end = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
        return day.strftime("%Y-%m-%d"), max(1, math.ceil(end.timestamp() - now)), 2 * 86400.0
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    end = datetime(year, month, 1, tzinfo=UTC)
    return day.strftime("%Y-%m"), max(1, math.ceil(end.timestamp() - now)), 32 * 86400.0


class RateLimiter:
    """Requests per minute per IP, key and user; tokens per minute and budgets per key
    and user. Scopes are strings: `key:ID` (per-key limits) or `user:ID` (per-user).

    Tokens are reserved when a request starts (prompt estimate + max_tokens) and
    settled with the real usage when it ends, so concurrent requests cannot overrun
    a limit between them."""

    def __init__(
        self, store: CounterStore, limits: Limits, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.limits = limits
        self.clock = clock
        self._tasks: set[asyncio.Task[None]] = set()
        self._meters = {"key": self._meters_for("key"), "user": self._meters_for("user")}
        self._user_meters = {
            f"user:{user}": self._meters_for("user", budget, user)
            for user, budget in limits.user_budgets.items()
        }
        self._stored: dict[str, BudgetOverride] = {}  # user id -> the stored budget applied
        self._read_at: dict[str, float] = {}  # user id -> when the applied one was read

    def use_stored_budget(
        self, user_id: str, stored: BudgetOverride | None, read_at: float = 0.0
    ) -> None:
        """Apply the budget stored for a user (`cozy users set-budget`), as the auth
        lookup read it at `read_at` (monotonic): over COZY_SERVER_BUDGETS `users.NAME`,
        over the default.

        Called on every request with the cached principal's value, so the unchanged
        case is a dict lookup and a comparison; meters are rebuilt only on a change. A
        read older than the one applied is ignored: a user's other key, still cached
        with the previous budget, must not switch it back."""
        current = self._stored.get(user_id)
        if current is stored or current == stored:
            return
        if read_at < self._read_at.get(user_id, 0.0):
            return
        self._read_at[user_id] = read_at
        scope = f"user:{user_id}"
        base = self.limits.user_budgets.get(user_id)
        if stored is None:
            del self._stored[user_id]
            if base is None:
                self._user_meters.pop(scope, None)
            else:
                self._user_meters[scope] = self._meters_for("user", base, user_id)
            return
        self._stored[user_id] = stored
        merged = with_stored(self.limits.user_budget if base is None else base, stored)
        self._user_meters[scope] = self._meters_for("user", merged, user_id, stored)

    def _meters_for(
        self,
        kind: str,
        budget: Budget | None = None,
        user: str | None = None,
        stored: BudgetOverride | None = None,
    ) -> list[_Meter]:
        lim = self.limits
        tpm = lim.tpm if kind == "key" or lim.user_tpm is None else lim.user_tpm
        if budget is None:
            budget = lim.key_budget if kind == "key" else lim.user_budget
        env = "COZY_SERVER_" + ("" if kind == "key" else "USER_")
        out = []
        if tpm > 0:
            out.append(
                _Meter("tokens per minute", tpm, "minute", False, False, env + "RATE_LIMIT_TPM")
            )
        bud = f"COZY_SERVER_BUDGETS ({f'users.{user}' if user else kind})"
        for name, field_name, value, period, usd in (
            ("tokens today", "tokens_day", budget.tokens_day, "day", False),
            ("tokens this month", "tokens_month", budget.tokens_month, "month", False),
            ("spend today", "usd_day", budget.usd_day, "day", True),
            ("spend this month", "usd_month", budget.usd_month, "month", True),
        ):
            if value:
                limit = int(value * MICRO) if usd else int(value)
                setting = bud
                if stored is not None and getattr(stored, field_name) is not None:
                    flag = "--" + field_name.replace("_", "-")
                    setting = f"this user's stored budget (`cozy users set-budget {user} {flag} N`)"
                out.append(_Meter(name, limit, period, usd, True, setting))
        return out

    def _meters_of(self, scope: str) -> list[_Meter]:
        if scope.startswith("user:"):
            return self._user_meters.get(scope, self._meters["user"])
        return self._meters["key"]

    @staticmethod
    def _kind(scope: str) -> str:
        return "user" if scope.startswith("user:") else "key"

    @staticmethod
    def _window(now: float) -> tuple[int, int]:
        start = int(now // WINDOW)
        retry = max(1, math.ceil((start + 1) * WINDOW - now))
        return start, retry

    async def check_ip(self, ip: str) -> None:
        if self.limits.ip_rpm <= 0:
            return
        window, retry = self._window(self.clock())
        count = await self.store.add(f"rl:ip:{ip}:{window}", 1, WINDOW * 2)
        if count > self.limits.ip_rpm:
            raise RateLimited(
                f"too many requests from {ip}: the limit is {self.limits.ip_rpm} per minute",
                retry_after=retry,
                hint=f"retry after {retry}s or raise COZY_SERVER_IP_RATE_LIMIT_RPM",
            )

    def _counter(self, scope: str, meter: _Meter, now: float) -> tuple[str, int, float]:
        label, retry, ttl = period_window(meter.period, now)
        unit = "usd" if meter.usd else "tok"
        return f"rl:{unit}:{meter.period}:{scope}:{label}", retry, ttl

    def _refuse(
        self, meter: _Meter, scope: str, used: int, retry: int, wanted: int = 0
    ) -> RateLimited:
        who = scope.partition(":")[0]
        if meter.usd:
            amount = f"${used / MICRO:,.4f} of ${meter.limit / MICRO:,.2f} used"
            if wanted:
                amount += f", this request may cost up to ${wanted / MICRO:,.4f}"
        else:
            amount = f"{used:,} of {meter.limit:,} tokens used"
            if wanted:
                amount += f", this request may take {wanted:,} (prompt + max_tokens)"
        if meter.quota:
            return QuotaExceeded(
                f"you exceeded your {meter.name} budget for this {who}: {amount}",
                retry_after=retry,
                hint=f"wait {retry}s for the next period, lower max_tokens, or raise "
                f"{meter.setting}",
            )
        return RateLimited(
            f"token limit reached: {amount} this minute for this {who}",
            retry_after=retry,
            hint=f"retry after {retry}s or raise {meter.setting}",
        )

    async def check_principal(self, scopes: str | Sequence[str]) -> None:
        """Before the body is read: refuse a scope whose tokens or budget are used up,
        then count the request against each scope's requests per minute."""
        now = self.clock()
        scopes = [scopes] if isinstance(scopes, str) else list(scopes)
        for scope in scopes:
            for meter in self._meters_of(scope):
                key, retry, _ = self._counter(scope, meter, now)
                used = await self.store.get(key)
                if used >= meter.limit:
                    raise self._refuse(meter, scope, used, retry)
        window, retry = self._window(now)
        for scope in scopes:
            user = self._kind(scope) == "user"
            rpm = (
                self.limits.user_rpm
                if user and self.limits.user_rpm is not None
                else self.limits.rpm
            )
            if rpm > 0:
                count = await self.store.add(f"rl:req:{scope}:{window}", 1, WINDOW * 2)
                if count > rpm:
                    setting = "USER_RATE_LIMIT_RPM" if user else "RATE_LIMIT_RPM"
                    raise RateLimited(
                        f"rate limit reached: the limit is {rpm} requests per minute",
                        retry_after=retry,
                        hint=f"retry after {retry}s or raise COZY_SERVER_{setting}",
                    )

    async def reserve(self, scopes: Sequence[str], tokens: int, micro_usd: int = 0) -> Reservation:
        """Hold `tokens` (and spend) on every meter of every scope, or refuse (429) and
        hold nothing."""
        now = self.clock()
        held = Reservation(max(0, tokens), max(0, micro_usd))
        try:
            for scope in scopes:
                for meter in self._meters_of(scope):
                    amount = held.micro_usd if meter.usd else held.tokens
                    key, retry, ttl = self._counter(scope, meter, now)
                    total = await self.store.add(key, amount, ttl)
                    held.keys.append((key, meter.usd, ttl))
                    if total > meter.limit:
                        raise self._refuse(meter, scope, total - amount, retry, amount)
        except RateLimited:
            await self._add(held, -held.tokens, -held.micro_usd)
            raise
        return held

    async def settle(self, held: Reservation, tokens: int, micro_usd: int = 0) -> None:
        """Replace the held amounts with the real usage, in the windows they were held in."""
        await self._add(held, tokens - held.tokens, micro_usd - held.micro_usd)
        held.tokens, held.micro_usd = tokens, micro_usd

    async def _add(self, held: Reservation, tokens: int, micro_usd: int) -> None:
        for key, usd, ttl in held.keys:
            amount = micro_usd if usd else tokens
            if amount:
                await self.store.add(key, amount, ttl)

    def settle_soon(self, held: Reservation, tokens: int, micro_usd: int = 0) -> None:
        """`settle` from synchronous code (the end of a response): in a task of its own."""
        task = asyncio.get_running_loop().create_task(self.settle(held, tokens, micro_usd))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def add_tokens(
        self, scopes: str | Sequence[str], tokens: int, micro_usd: int = 0
    ) -> None:
        """Count usage that was not reserved (embeddings)."""
        if tokens > 0 or micro_usd > 0:
            scopes = [scopes] if isinstance(scopes, str) else list(scopes)
            await self._add(self._held(scopes), tokens, micro_usd)

    def _held(self, scopes: Sequence[str]) -> Reservation:
        now = self.clock()
        held = Reservation(0, 0)
        for scope in scopes:
            for meter in self._meters_of(scope):
                key, _, ttl = self._counter(scope, meter, now)
                held.keys.append((key, meter.usd, ttl))
        return held

    def close(self) -> None:
        self.store.close()
