"""Client-side usage limits over sliding windows, independent of any provider.

A `LimitTracker` watches one `Limits` object (requests, tokens and cost per minute/hour/day) with one
`SlidingWindow` per configured limit. Providers use it per subscription; routing reuses it per provider.
Time comes from an injected monotonic clock, so tests move time forward instead of sleeping.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from operator import itemgetter

from providers.base import Limits

Clock = Callable[[], float]

MINUTE_S = 60.0
HOUR_S = 3600.0
DAY_S = 86400.0


@dataclass(frozen=True)
class LimitSpec:
    """One `Limits` field: what it counts and over how long."""

    name: str
    measure: str  # "requests" | "tokens" | "cost"
    span_s: float


# Every field of `Limits`, in the order `would_exceed` reports them (shortest window first, because it clears first).
LIMIT_SPECS: tuple[LimitSpec, ...] = (
    LimitSpec("requests_per_minute", "requests", MINUTE_S),
    LimitSpec("tokens_per_minute", "tokens", MINUTE_S),
    LimitSpec("requests_per_hour", "requests", HOUR_S),
    LimitSpec("tokens_per_hour", "tokens", HOUR_S),
    LimitSpec("requests_per_day", "requests", DAY_S),
    LimitSpec("tokens_per_day", "tokens", DAY_S),
    LimitSpec("cost_usd_per_day", "cost", DAY_S),
)
_MEASURES = {"requests": 0, "tokens": 1, "cost": 2}


class SlidingWindow:
    """The sum of amounts added during the last `span_s` seconds (an exact log, not fixed buckets).

    Exact because a fixed-bucket counter lets twice the limit through across a bucket edge, and the
    volumes here (at most one entry per provider call) are small.
    """

    def __init__(self, span_s: float, clock: Clock = time.monotonic) -> None:
        if span_s <= 0:
            raise ValueError("span_s must be positive")
        self.span_s = span_s
        self._clock = clock
        self._events: deque[tuple[float, float]] = deque()
        self._total = 0.0

    def add(self, amount: float = 1.0) -> None:
        if amount == 0:
            return
        now = self._clock()
        self._prune(now)
        if self._events and self._events[-1][0] == now:
            # Coalesce same-instant entries so a burst does not grow the log.
            self._events[-1] = (now, self._events[-1][1] + amount)
        else:
            self._events.append((now, amount))
        self._total += amount

    def add_at(self, at: float, amount: float) -> None:
        """Add an amount observed at clock time `at` (in the past): restores state recorded before a restart.

        O(1) when entries arrive oldest first (the usual replay order); use `load` for many unordered ones.
        """
        if amount == 0:
            return
        now = self._clock()
        if at <= now - self.span_s:
            return
        at = min(at, now)
        if not self._events or at >= self._events[-1][0]:
            self._events.append((at, amount))
        else:
            self.load([(at, amount)])
            return
        self._total += amount

    def load(self, points: Iterable[tuple[float, float]]) -> None:
        """Add many (clock time, amount) entries at once, in any order: one sort, O(n log n) in all.

        Rebuilding a day of attempts with `add_at` one by one out of order would be quadratic.
        """
        now = self._clock()
        cutoff = now - self.span_s
        fresh = [(min(at, now), amount) for at, amount in points if amount != 0 and at > cutoff]
        if not fresh:
            return
        merged = sorted([*self._events, *fresh], key=itemgetter(0))
        self._events = deque(merged)
        self._total += sum(amount for _, amount in fresh)

    def total(self) -> float:
        self._prune(self._clock())
        return self._total

    def total_at(self, now: float) -> float:
        """`total()` for a clock reading the caller already took (one reading for several windows)."""
        events = self._events
        if events and events[0][0] <= now - self.span_s:
            self._prune(now)
        return self._total

    def events(self) -> list[tuple[float, float]]:
        """(time, amount) entries still inside the window, oldest first."""
        self._prune(self._clock())
        return list(self._events)

    def seconds_until_room(self, limit: float, extra: float) -> float:
        """Seconds until `total() + extra <= limit`; 0 if already so, inf if `extra` alone is over `limit`."""
        now = self._clock()
        self._prune(now)
        if self._total + extra <= limit:
            return 0.0
        if extra > limit:
            return math.inf
        remaining = self._total
        for at, amount in self._events:
            remaining -= amount
            if remaining + extra <= limit:
                return max(0.0, at + self.span_s - now)
        return math.inf  # unreachable: emptying the window always makes room for extra <= limit

    def _prune(self, now: float) -> None:
        cutoff = now - self.span_s
        while self._events and self._events[0][0] <= cutoff:
            _, amount = self._events.popleft()
            self._total -= amount
        if not self._events:
            self._total = 0.0  # drop float drift once empty


class LimitTracker:
    """Counts requests, tokens and cost against a `Limits` object over sliding windows.

    Thread-safe because routing may consult one tracker from several Prefect worker threads.
    """

    def __init__(self, limits: Limits, clock: Clock = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._lock = threading.Lock()
        self._started = clock()
        # share -> room left per measure (requests, tokens, cost) when last computed; cleared by every write.
        self._room: dict[float, tuple[float, float, float]] = {}
        self._windows: dict[str, tuple[LimitSpec, float, SlidingWindow]] = {}
        for spec in LIMIT_SPECS:
            value = getattr(limits, spec.name)
            if value is not None:
                self._windows[spec.name] = (spec, float(value), SlidingWindow(spec.span_s, clock))

    @property
    def has_limits(self) -> bool:
        return bool(self._windows)

    def would_exceed(self, tokens: float = 0, cost: float = 0.0, requests: float = 1) -> str | None:
        """The name of the first limit this call would break (e.g. "tokens_per_hour"), or None if it fits."""
        amounts = {"requests": requests, "tokens": tokens, "cost": cost}
        with self._lock:
            for name, (spec, limit, window) in self._windows.items():
                extra = amounts[spec.measure]
                # A zero-amount call never breaks a limit, even one already at its cap (e.g. a token top-up).
                if extra > 0 and window.total() + extra > limit:
                    return name
        return None

    def record(self, tokens: float = 0, cost: float = 0.0, requests: float = 1) -> None:
        """Count a call; callers may record the request up front and its tokens and cost once known."""
        amounts = {"requests": requests, "tokens": tokens, "cost": cost}
        with self._lock:
            self._room.clear()
            for spec, _, window in self._windows.values():
                window.add(amounts[spec.measure])

    def record_at(self, seconds_ago: float, tokens: float = 0, cost: float = 0.0, requests: float = 1) -> None:
        """Count a call made `seconds_ago` seconds before now (state rebuilt from the ledger after a restart)."""
        amounts = {"requests": requests, "tokens": tokens, "cost": cost}
        with self._lock:
            self._room.clear()
            at = self._clock() - max(0.0, seconds_ago)
            for spec, _, window in self._windows.values():
                window.add_at(at, amounts[spec.measure])

    def load(self, calls: Iterable[tuple[float, float, float]]) -> None:
        """Count many past calls at once, each `(seconds_ago, tokens, cost)` as one request, in any order.

        O(n log n) for n calls: restoring a day of attempts at every run start must stay cheap.
        """
        now = self._clock()
        rows = [(now - max(0.0, ago), tokens, cost) for ago, tokens, cost in calls]
        with self._lock:
            self._room.clear()
            for spec, _, window in self._windows.values():
                if spec.measure == "requests":
                    window.load((at, 1.0) for at, _, _ in rows)
                elif spec.measure == "tokens":
                    window.load((at, tokens) for at, tokens, _ in rows)
                else:
                    window.load((at, cost) for at, _, cost in rows)

    def carry_over(self, old: LimitTracker) -> None:
        """Take over the usage `old` counted in every window this tracker shares with it (same limit name).

        Used when a provider's config is updated while running: its usage so far still counts.
        """
        with old._lock:
            kept = {name: window.events() for name, (_, _, window) in old._windows.items()}
        with self._lock:
            self._room.clear()
            for name, (_, _, window) in self._windows.items():
                if name in kept:
                    window.load(kept[name])

    def first_over(
        self, tokens: float = 0, cost: float = 0.0, requests: float = 1, share: float = 1.0
    ) -> tuple[str, float, float] | None:
        """(name, used, limit) of the first limit this call would take past `share` of it, or None.

        The per-decision check. The room left per measure is kept until the next write: entries only ever
        leave a window as time passes, so a call that fitted that room fits now, and most checks end there.
        """
        with self._lock:
            room = self._room.get(share)
            if room is not None and requests <= room[0] and tokens <= room[1] and cost <= room[2]:
                return None
            now = self._clock()
            left = [math.inf, math.inf, math.inf]
            over = None
            for name, (spec, limit, window) in self._windows.items():
                index = _MEASURES[spec.measure]
                used = window.total_at(now)
                cap = limit * share
                if cap - used < left[index]:
                    left[index] = cap - used
                extra = (requests, tokens, cost)[index]
                if over is None and extra > 0 and used + extra > cap:
                    over = (name, used, limit)
            self._room[share] = (left[0], left[1], left[2])
        return over

    def max_utilization(self) -> float:
        """The highest used fraction of any configured limit (0 without limits)."""
        highest = 0.0
        with self._lock:
            now = self._clock()
            for _, limit, window in self._windows.values():
                used = window.total_at(now) / limit
                if used > highest:
                    highest = used
        return highest

    def usage(self) -> dict[str, tuple[float, float]]:
        """(used, limit) of each configured limit."""
        with self._lock:
            return {name: (window.total(), limit) for name, (_, limit, window) in self._windows.items()}

    def utilization(self) -> dict[str, float]:
        """Used fraction (0..1, may exceed 1 after an over-limit top-up) of each configured limit."""
        with self._lock:
            return {name: window.total() / limit for name, (_, limit, window) in self._windows.items()}

    def available_in(self, tokens: float = 0, cost: float = 0.0, requests: float = 1) -> float:
        """Seconds until `would_exceed(...)` is None: 0 when it fits now, inf when it can never fit."""
        amounts = {"requests": requests, "tokens": tokens, "cost": cost}
        with self._lock:
            waits = [
                window.seconds_until_room(limit, amounts[spec.measure])
                for spec, limit, window in self._windows.values()
                if amounts[spec.measure] > 0
            ]
        return max(waits, default=0.0)

    def forecast_exhaustion(self) -> dict[str, float | None]:
        """Seconds until each limit is reached if usage continues at its recent rate; None if it never is.

        The rate is what the window holds divided by how long it has been observed (the tracker may be
        younger than the window). The projection lets old entries expire, so a steady rate below the limit
        forecasts None rather than a false exhaustion.
        """
        now = self._clock()
        out: dict[str, float | None] = {}
        with self._lock:
            for name, (spec, limit, window) in self._windows.items():
                observed = min(spec.span_s, max(now - self._started, 1.0))
                events = window.events()
                used = sum(amount for _, amount in events)
                expiries = [(at + spec.span_s - now, amount) for at, amount in events]
                out[name] = seconds_to_reach(limit, used, used / observed, expiries, spec.span_s)
        return out

    def earliest_exhaustion(self) -> tuple[str, float] | None:
        """The limit forecast to run out first and the seconds until then, or None if none is."""
        forecasts = [(s, name) for name, s in self.forecast_exhaustion().items() if s is not None]
        if not forecasts:
            return None
        seconds, name = min(forecasts)
        return name, seconds


def seconds_to_reach(
    limit: float, used: float, rate: float, expiries: list[tuple[float, float]], span_s: float
) -> float | None:
    """First time the projected window total reaches `limit`: new usage at `rate` per second while each
    `(expires_in_s, amount)` in `expiries` (soonest first) ages out of the window. None if it never does."""
    if used >= limit:
        return 0.0
    if rate <= 0:
        return None
    # Between two expiries the projection rises linearly; check each such segment in turn.
    projected, start = used, 0.0
    for expires_in, amount in [*expiries, (span_s, 0.0)]:
        expires_in = max(expires_in, start)
        reach = start + (limit - projected) / rate
        if reach <= expires_in:
            return reach
        projected += rate * (expires_in - start) - amount
        start = expires_in
    # After one whole span every current entry has expired and the window holds rate * span.
    return span_s if rate * span_s >= limit else None
