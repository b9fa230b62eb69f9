"""The quota state of one scope: a provider as a whole, or one of its subscriptions.

A scope combines what `ProviderQuota` hears about it:
- configured `limits`, counted in sliding windows (`usage_window.LimitTracker`);
- a block until a reported reset (quota errors, long rate limits, `rejected` signals);
- a short, growing cool-off after rate limits that say nothing (or little) about when to come back;
- the latest utilisation each reported window family (requests, tokens, five_hour, ...) holds until its reset.
"""

from __future__ import annotations

from collections.abc import Callable

from providers import LIMIT_SPECS, Limits, LimitSpec, LimitTracker

# A rate limit without a retry-after: back off 1 s, doubling per repeat up to 60 s; a success resets it.
COOLOFF_FIRST_S = 1.0
COOLOFF_MAX_S = 60.0


class QuotaScope:
    """Loop-confined; `ProviderQuota` drives it and turns its answers into reasons and events."""

    __slots__ = (
        "_clock",
        "blocked_reason",
        "blocked_until",
        "cooloff_s",
        "cooloff_until",
        "signals",
        "specs",
        "subscription",
        "tracker",
    )

    def __init__(self, subscription: str | None, limits: Limits, clock: Callable[[], float]) -> None:
        self.subscription = subscription
        self._clock = clock
        self.tracker = LimitTracker(limits, clock)
        self.specs: list[tuple[LimitSpec, float]] = [
            (s, float(getattr(limits, s.name))) for s in LIMIT_SPECS if getattr(limits, s.name) is not None
        ]
        self.blocked_until: float | None = None
        self.blocked_reason: str | None = None
        self.cooloff_until: float | None = None
        # Length of the last cool-off; 0 once a success has reset the streak.
        self.cooloff_s = 0.0
        # Window family -> (utilisation 0..1, clock time until which it holds).
        self.signals: dict[str, tuple[float, float]] = {}

    # --- questions --------------------------------------------------------------------------------

    def blocked(self, now: float) -> bool:
        return self.blocked_until is not None and now < self.blocked_until

    def refusal(self, now: float, tokens: float, cost: float, share: float) -> str | None:
        """Why a call of this size must not use this scope now, or None. `share` is the usable part of limits."""
        if self.blocked_until is not None and now < self.blocked_until:
            return f"{self.blocked_reason} (resets in {self.blocked_until - now:.0f}s)"
        if self.cooloff_until is not None and now < self.cooloff_until:
            return f"rate_limited: cooling off ({self.cooloff_until - now:.1f}s left)"
        if not self.specs:
            return None
        over = self.tracker.first_over(tokens, cost, 1.0, share)
        if over is None:
            return None
        name, used, limit = over
        # Below the full limit, the rest is the reserve only critical tasks may use.
        return f"{name} {used:g}/{limit:g}" + (" (reserve kept for critical)" if share < 1 else "")

    def pressure(self, now: float) -> float:
        """Highest used fraction of any configured or reported limit; 1.0 while blocked."""
        if self.blocked(now):
            return 1.0
        util = self.tracker.max_utilization() if self.specs else 0.0
        if self.signals:
            expired = [kind for kind, (_, until) in self.signals.items() if now >= until]
            for kind in expired:
                del self.signals[kind]
            util = max(util, max((u for u, _ in self.signals.values()), default=0.0))
        return util

    # --- changes ----------------------------------------------------------------------------------

    def block(self, until: float, reason: str) -> bool:
        """Block until `until`; False when an existing block already lasts at least as long."""
        if self.blocked_until is not None and self.blocked_until >= until:
            return False
        self.blocked_until, self.blocked_reason = until, reason
        return True

    def unblock(self) -> str | None:
        reason = self.blocked_reason
        self.blocked_until = self.blocked_reason = None
        return reason

    def cool_off(self, seconds: float | None) -> float:
        """Back off for `seconds`, or for the next step of the growing cool-off when None; returns the length."""
        if seconds is None:
            seconds = COOLOFF_FIRST_S if self.cooloff_s <= 0 else min(COOLOFF_MAX_S, self.cooloff_s * 2)
            self.cooloff_s = seconds
        until = self._clock() + seconds
        if self.cooloff_until is None or until > self.cooloff_until:
            self.cooloff_until = until
        return seconds

    def succeeded(self) -> None:
        self.cooloff_s = 0.0
        self.cooloff_until = None

    def report(self, kind: str, utilization: float, until: float) -> None:
        """The latest utilisation of one window family; the highest family sets the pressure."""
        self.signals[kind] = (utilization, until)

    def carry_over(self, old: QuotaScope) -> None:
        """Take over `old`'s usage, block, cool-off and reports (a provider updated while running)."""
        self.tracker.carry_over(old.tracker)
        self.blocked_until, self.blocked_reason = old.blocked_until, old.blocked_reason
        self.cooloff_until, self.cooloff_s = old.cooloff_until, old.cooloff_s
        self.signals = dict(old.signals)
