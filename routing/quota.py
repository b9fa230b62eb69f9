"""Quota intelligence per provider: client-side limits, what providers report, and moving away before a limit.

Three sources feed one state:
- configured `limits` (requests/tokens/cost per minute/hour/day), counted in sliding windows;
- quota errors (`QuotaExhausted` with its reset time, long rate limits), which block the provider until then;
- `QuotaSignal`s from rate-limit headers and CLI events (remaining, utilization, reset).

Non-critical tasks may use only `1 - reserve_for_critical` of each configured limit; critical tasks may use
all of it. Above `switch_threshold` of any limit a provider is still usable but ordered after the others.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from providers import Limits, ProviderError, QuotaExhausted, QuotaSignal, RateLimited
from providers.usage_window import LIMIT_SPECS, LimitTracker
from routing.events import QUOTA_BLOCKED, QUOTA_FORECAST_CROSSED, QUOTA_RESET, RoutingEvent, RoutingObserver

Clock = Callable[[], float]
WallClock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ProviderQuota:
    """Loop-confined quota state of one provider (the engine calls it from its single event loop)."""

    def __init__(
        self,
        provider_id: str,
        limits: Limits,
        *,
        switch_threshold: float = 0.9,
        reserve_for_critical: float = 0.1,
        per_subscription: bool = False,
        observer: RoutingObserver | None = None,
        clock: Clock = time.monotonic,
        wall_clock: WallClock = _utc_now,
    ) -> None:
        self.provider_id = provider_id
        self.tracker = LimitTracker(limits, clock)
        self._specs = [(s, getattr(limits, s.name)) for s in LIMIT_SPECS if getattr(limits, s.name) is not None]
        self.switch_threshold = switch_threshold
        self.reserve = reserve_for_critical
        # A provider that rotates its own subscriptions (claude_cli) reports one subscription's quota error;
        # only a provider-wide one (no subscription) blocks the whole provider.
        self._per_subscription = per_subscription
        self._observer = observer
        self._clock, self._wall = clock, wall_clock
        self.blocked_until: float | None = None
        self.blocked_reason: str | None = None
        self._signal_utilization = 0.0
        self._signal_until: float | None = None
        self._above_threshold = False

    @property
    def has_limits(self) -> bool:
        return bool(self._specs)

    @property
    def watched(self) -> bool:
        """Whether this provider can be near a limit at all (configured limits or a reported quota)."""
        return bool(self._specs) or self._signal_until is not None

    # --- decisions --------------------------------------------------------------------------------

    def refusal(self, tokens: float, cost: float, *, critical: bool) -> str | None:
        """Why this call must not go to the provider now (a short reason for the decision record), or None."""
        if self.blocked_until is not None:
            now = self._clock()
            if now < self.blocked_until:
                return f"quota: {self.blocked_reason} (resets in {self.blocked_until - now:.0f}s)"
            self._unblock()
        if not self._specs:
            return None
        share = 1.0 if critical else 1.0 - self.reserve
        usage = self.tracker.usage()
        amounts = {"requests": 1.0, "tokens": tokens, "cost": cost}
        for spec, _ in self._specs:
            used, limit = usage[spec.name]
            extra = amounts[spec.measure]
            if extra > 0 and used + extra > limit * share:
                return f"quota: {spec.name} {used:g}/{limit:g}" + ("" if critical else " (reserve kept for critical)")
        return None

    def pressure(self) -> float:
        """The highest used fraction of any limit, configured or reported; >= switch_threshold means move away."""
        util = max(self.tracker.utilization().values(), default=0.0) if self._specs else 0.0
        if self._signal_until is not None and self._clock() < self._signal_until:
            util = max(util, self._signal_utilization)
        return util

    def over_threshold(self) -> bool:
        return self.pressure() >= self.switch_threshold

    # --- accounting -------------------------------------------------------------------------------

    def begin(self) -> None:
        """Count the request when it is sent, so concurrent calls see each other against request limits."""
        if self._specs:
            self.tracker.record(tokens=0, cost=0.0, requests=1)

    def settle(self, tokens: float, cost: float) -> None:
        if self._specs and (tokens or cost):
            self.tracker.record(tokens=tokens, cost=cost, requests=0)
        self._check_threshold()

    def on_error(self, error: ProviderError) -> None:
        if isinstance(error, QuotaExhausted) and not (self._per_subscription and error.subscription):
            self._block_for(error, "quota_exhausted")
        elif isinstance(error, RateLimited) and not error.retry_helps and error.retry_after_s:
            self._block(self._clock() + error.retry_after_s, "rate_limited", None)

    def on_signal(self, signal: QuotaSignal) -> None:
        if self._per_subscription and signal.subscription:
            return  # the provider steers between its own subscriptions
        seconds = self._seconds_until(signal.reset_at)
        if signal.status == "rejected" or (signal.remaining is not None and signal.remaining <= 0):
            until = self._clock() + (seconds if seconds is not None else 60.0)
            self._block(until, f"{signal.limit_kind} exhausted", None)
            return
        utilization = signal.utilization
        if utilization is None and signal.limit and signal.remaining is not None:
            utilization = 1.0 - signal.remaining / signal.limit
        if signal.status == "allowed_warning":
            utilization = max(utilization or 0.0, self.switch_threshold)
        if utilization is not None:
            self._signal_utilization = utilization
            self._signal_until = self._clock() + (seconds if seconds is not None else 60.0)
            self._check_threshold()

    def restore(self, seconds_ago: float, tokens: float, cost: float) -> None:
        """Replay one recorded attempt (from the ledger) into the windows after a restart."""
        if self._specs:
            self.tracker.record_at(seconds_ago, tokens=tokens, cost=cost, requests=1)

    def restore_block(self, reset_at: datetime, reason: str) -> None:
        seconds = self._seconds_until(reset_at)
        if seconds is not None and seconds > 0:
            self.blocked_until, self.blocked_reason = self._clock() + seconds, reason

    # --- internals --------------------------------------------------------------------------------

    def _seconds_until(self, at: datetime | None) -> float | None:
        return None if at is None else (at - self._wall()).total_seconds()

    def _block_for(self, error: ProviderError, reason: str) -> None:
        seconds = self._seconds_until(error.reset_at)
        if seconds is None:
            seconds = error.retry_after_s if error.retry_after_s is not None else 60.0
        self._block(self._clock() + max(0.0, seconds), reason, error.reset_at)

    def _block(self, until: float, reason: str, reset_at: datetime | None) -> None:
        if self.blocked_until is not None and self.blocked_until >= until:
            return
        self.blocked_until, self.blocked_reason = until, reason
        reset = reset_at or self._wall() + timedelta(seconds=until - self._clock())
        self._emit(QUOTA_BLOCKED, {"reason": reason, "reset_at": reset.isoformat()})

    def _unblock(self) -> None:
        reason = self.blocked_reason
        self.blocked_until = self.blocked_reason = None
        self._emit(QUOTA_RESET, {"previous": reason})

    def _check_threshold(self) -> None:
        above = self.pressure() >= self.switch_threshold
        if above and not self._above_threshold:
            forecast = self.tracker.earliest_exhaustion() if self._specs else None
            self._emit(
                QUOTA_FORECAST_CROSSED,
                {
                    "pressure": round(self.pressure(), 4),
                    "threshold": self.switch_threshold,
                    "limit": forecast[0] if forecast else None,
                    "exhausted_in_s": round(forecast[1], 1) if forecast else None,
                },
            )
        self._above_threshold = above

    def _emit(self, kind: str, detail: dict[str, object]) -> None:
        if self._observer is not None:
            self._observer(RoutingEvent(kind=kind, provider_id=self.provider_id, detail=dict(detail)))
