"""Quota intelligence per provider: client-side limits, what providers report, and moving away before a limit.

Three sources feed one state, per provider and per subscription (`QuotaScope`):
- configured `limits` (requests/tokens/cost per minute/hour/day), counted in sliding windows;
- quota errors (`QuotaExhausted` with its reset time, rate limits), which block or cool off the scope;
- `QuotaSignal`s from rate-limit headers and CLI events (remaining, utilisation, reset), kept per window
  family until that family's reset, the highest family setting the pressure.

A provider with subscriptions (claude_cli) is out when its own scope is, or when every subscription is; it
is near its limit (ordered last) when its own scope is, or when every subscription is. When some of its
subscriptions are out as far as routing knows (e.g. restored from the ledger after a restart, which the
provider itself cannot know), the call names a usable one (`ExecutionContext.subscription`).

Non-critical tasks may use only `1 - reserve_for_critical` of each configured limit; critical tasks may use
all of it. Above `switch_threshold` of any limit a provider is still usable but ordered after the others.

`quota.forecast_crossed` tells automations a provider is about to run out, before it does, once per crossing:
when usage reaches `switch_threshold` of a limit (checked as each request is counted, not only when it
settles), when a call is refused because it would pass the usable share of a limit (with the default reserve
of 0.1 that share is 0.9 of it: usage may never reach a 0.9 threshold), or when the forecast says a limit runs
out within `alerts.quota_forecast_hours`. It is re-armed once usage has fallen to half the threshold with no
forecast inside the horizon (the window reset). A router that starts above the threshold (usage restored from
the ledger) does not report it again: the run that crossed it did.

Blocks: until the reported reset; a quota error or `rejected` spend signal with no reset at all (an empty
balance, HTTP 402, `insufficient_quota`) blocks for `NO_RESET_BLOCK_S` (an hour): money does not come back
in a minute, and a health probe cannot tell (listing models works with an empty balance). A `rejected`
rate-limit signal without a reset blocks for a minute. A rate limit whose retry-after is longer than
`long_wait_s` (the router passes its failover settings' `retry_max_s`, the one short-retry threshold) blocks
until then; a short (or absent) one starts a cool-off instead: the retry-after, or 1 s doubling to 60 s, reset
by the next success. A subscription whose credential was refused (`authentication` naming it) is blocked until
the re-probe time the error carries, or until the provider reports its credentials changed.

A provider that reports a per-minute input-token limit (Anthropic's `anthropic-ratelimit-input-tokens-limit`,
sent on every response) can never take a prompt larger than that limit, however long the call waits: the vendor
answers it with a rate limit every time. `too_large` says so, and the planner leaves such a provider out of that
task's plan rather than spend one of its attempts on a refusal.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta

from providers import (
    CREDENTIALS_CHANGED,
    LIMIT_SPECS,
    AuthenticationFailed,
    Limits,
    ProviderError,
    QuotaExhausted,
    QuotaSignal,
    RateLimited,
    utc_now,
)
from routing.events import QUOTA_BLOCKED, QUOTA_FORECAST_CROSSED, QUOTA_RESET, RoutingEvent, RoutingObserver
from routing.quota_scope import QuotaScope

Clock = Callable[[], float]
WallClock = Callable[[], datetime]

NO_RESET_BLOCK_S = 3600.0
REJECTED_BLOCK_S = 60.0
_AUTH_REASON = "authentication"
_SPEND_KINDS = frozenset({"spend"})
# The limit kind of a per-minute input-token limit (providers.anthropic names its header family so).
INPUT_TOKENS = "input_tokens"
# The planner's skip reason for a provider whose reported input-token limit a prompt exceeds.
TOO_LARGE = "prompt_too_large"
_MAX_AFFINITY_KEYS = 10_000
# The forecast walks every window's entries: at most once a second per provider, not per call.
FORECAST_EVERY_S = 1.0
# A crossing is reported again only after usage fell to this fraction of switch_threshold (the window reset),
# so a provider held at its cap, whose usage wobbles around the threshold as the window slides, reports once.
REARM_FRACTION = 0.5
_SPANS = {spec.name: spec.span_s for spec in LIMIT_SPECS}

# A past call to restore: (seconds ago, tokens, cost, subscription).
PastCall = tuple[float, float, float, str | None]


def _over_a_limit(scope: QuotaScope, now: float) -> bool:
    """Refused for its configured limits, not for a block or a cool-off (those are reported as blocked)."""
    return (
        bool(scope.specs)
        and not scope.blocked(now)
        and not (scope.cooloff_until is not None and now < scope.cooloff_until)
    )


class ProviderQuota:
    """Loop-confined quota state of one provider (the engine calls it from its single event loop)."""

    def __init__(
        self,
        provider_id: str,
        limits: Limits,
        *,
        subscriptions: Mapping[str, Limits] | None = None,
        switch_threshold: float = 0.9,
        reserve_for_critical: float = 0.1,
        observer: RoutingObserver | None = None,
        clock: Clock = time.monotonic,
        wall_clock: WallClock = utc_now,
        forecast_horizon_s: float | None = None,
        long_wait_s: float = 5.0,
    ) -> None:
        self.provider_id = provider_id
        # A rate limit asking for a longer wait blocks the scope; a shorter one cools it off (failover's retry_max_s).
        self.long_wait_s = long_wait_s
        self._clock, self._wall = clock, wall_clock
        self._own = QuotaScope(None, limits, clock)
        # A provider that rotates its own subscriptions reports one subscription's quota errors and signals;
        # only provider-wide ones (no subscription) concern the provider scope.
        self._subs: dict[str, QuotaScope] = {
            name: QuotaScope(name, sub_limits, clock) for name, sub_limits in (subscriptions or {}).items()
        }
        self.switch_threshold = switch_threshold
        self.reserve = reserve_for_critical
        self._observer = observer
        # Inside a crossing: reported, not re-armed yet (see the module's docstring).
        self._near = False
        # `alerts.quota_forecast_hours` in seconds; None: crossings by usage only.
        self.forecast_horizon_s = forecast_horizon_s
        self._forecast_next = -math.inf
        self._forecast: tuple[str, float] | None = None
        # When usage was last restored from the ledger: the windows then hold entries older than this process,
        # and a window's forecast (rate = what it holds / how long it was watched) is trusted a full span later.
        self._restored_at: float | None = None
        # Known to be below switch_threshold since the last write (see over_threshold).
        self._below = False
        # Whether this provider can be near a limit at all (configured limits, subscriptions or a reported
        # quota); read per candidate per decision, so an attribute that only ever turns on.
        self.watched = bool(self._own.specs) or bool(self._subs)
        # Whether counting a request (begin) can move the pressure at all.
        self._request_limits = any(
            spec.measure == "requests" for scope in (self._own, *self._subs.values()) for spec, _ in scope.specs
        )
        # Affinity key -> the subscription that served it, so a named subscription keeps the prompt cache.
        self._sub_affinity: OrderedDict[str, str] = OrderedDict()
        # Name the subscription of every call, not only when some are out: the router sets it when subscription
        # limits are shared across processes, since a call's usage counts against the subscription it uses.
        self.name_subscriptions = False
        # The per-minute input-token limit the provider last reported (None: never reported); see `too_large`.
        self.input_tokens_limit: float | None = None

    # --- what the router asks ---------------------------------------------------------------------

    @property
    def has_limits(self) -> bool:
        """Whether any configured limit (provider or subscription) needs the usage history after a restart."""
        return bool(self._own.specs) or any(s.specs for s in self._subs.values())

    @property
    def blocked_until(self) -> float | None:
        return self._own.blocked_until if self._own.blocked(self._clock()) else None

    @property
    def blocked_reason(self) -> str | None:
        return self._own.blocked_reason if self._own.blocked(self._clock()) else None

    def refusal(self, tokens: float, cost: float, *, critical: bool) -> str | None:
        """Why this call must not go to the provider now (a short reason for the decision record), or None."""
        own = self._own
        if not self._subs and own.blocked_until is None and own.cooloff_until is None and not own.specs:
            return None  # nothing could refuse: the common case, checked per provider per decision
        reason, _ = self.admission(tokens, cost, critical=critical, affinity=None)
        return reason

    @property
    def subscriptions(self) -> tuple[str, ...]:
        """The subscriptions this quota knows (configured, or named by the provider's errors and signals)."""
        return tuple(self._subs)

    @property
    def subscriptions_limited(self) -> bool:
        """Whether any subscription has a limit of its own configured (else the provider's pool chooses)."""
        return any(scope.specs for scope in self._subs.values())

    def admission(
        self,
        tokens: float,
        cost: float,
        *,
        critical: bool,
        affinity: str | None,
        exclude: frozenset[str] | set[str] = frozenset(),
    ) -> tuple[str | None, str | None]:
        """(why not, None) or (None, the subscription the call must use, None for the provider's own choice).

        `exclude`: subscriptions this task already tried on this provider; the call must use another.
        """
        own = self._own
        if not self._subs and own.blocked_until is None and own.cooloff_until is None and not own.specs:
            return None, None  # nothing could refuse (see refusal)
        now = self._clock()
        share = 1.0 if critical else 1.0 - self.reserve
        reason = self._scope_refusal(self._own, now, tokens, cost, share)
        if reason is not None:
            if not self._near and _over_a_limit(own, now):
                self._check_near(refused=self._explain(reason))  # the usable share is used up for this work
            return self._explain(reason), None
        if not self._subs:
            return None, None
        usable: list[QuotaScope] = []
        reasons: list[str] = []
        for sub in self._subs.values():
            why = "tried for this task" if sub.subscription in exclude else None
            why = why or self._scope_refusal(sub, now, tokens, cost, share)
            if why is None:
                usable.append(sub)
            else:
                reasons.append(f"{sub.subscription}: {why}")
        if not usable:
            reason = self._explain("every subscription is out (" + "; ".join(reasons) + ")")
            if not self._near and any(_over_a_limit(sub, now) for sub in self._subs.values()):
                self._check_near(refused=reason)
            return reason, None
        if not reasons and not self.name_subscriptions:
            return None, None
        return None, self._pick(usable, affinity, now)

    def pressure(self) -> float:
        """The highest used fraction of the provider's limits; with subscriptions, also the least-used one's."""
        now = self._clock()
        util = self._own.pressure(now)
        if self._subs:
            util = max(util, min(s.pressure(now) for s in self._subs.values()))
        return util

    def over_threshold(self) -> bool:
        # Checked per candidate per decision. Below the threshold stays below until the next write (windows only
        # empty as time passes, reports only expire), so that answer is kept; "above" is checked afresh.
        if self._below:
            return False
        above = self.pressure() >= self.switch_threshold
        self._below = not above
        return above

    # --- accounting -------------------------------------------------------------------------------

    def begin(self, subscription: str | None = None) -> None:
        """Count the request when it is sent, so concurrent calls see each other against request limits."""
        self._below = False
        if self._own.specs:
            self._own.tracker.record(tokens=0, cost=0.0, requests=1)
        sub = self._subs.get(subscription) if subscription else None
        if sub is not None and sub.specs:
            sub.tracker.record(tokens=0, cost=0.0, requests=1)
        if self._request_limits:
            self._check_near()  # a request limit is crossed when the request goes out, not when it returns

    def settle(
        self, tokens: float, cost: float, *, subscription: str | None = None, counted: str | None = None
    ) -> None:
        """A finished call's usage; `counted` is the subscription whose request `begin` already counted."""
        if not self.watched:
            return  # no limit to count against, no report to compare with
        if self._own.specs and (tokens or cost):
            self._own.tracker.record(tokens=tokens, cost=cost, requests=0)
        sub = self._subs.get(subscription) if subscription else None
        if sub is not None and sub.specs:
            sub.tracker.record(tokens=tokens, cost=cost, requests=0 if subscription == counted else 1)
        self._check_near()

    def on_success(self, subscription: str | None = None, affinity: str | None = None) -> None:
        if not self._subs and self._own.cooloff_until is None and not self._own.cooloff_s:
            return  # nothing to reset
        self._own.succeeded()
        sub = self._subs.get(subscription) if subscription else None
        if sub is not None:
            sub.succeeded()
            if affinity is not None:
                self._sub_affinity[affinity] = subscription  # type: ignore[assignment]
                self._sub_affinity.move_to_end(affinity)
                while len(self._sub_affinity) > _MAX_AFFINITY_KEYS:
                    self._sub_affinity.popitem(last=False)

    def on_error(self, error: ProviderError) -> None:
        self._below = False
        scope = self._scope_for(error.subscription)
        if isinstance(error, QuotaExhausted):
            seconds = self._seconds_until(error.reset_at)
            if seconds is None:
                seconds = error.retry_after_s if error.retry_after_s is not None else NO_RESET_BLOCK_S
            reason = f"quota_exhausted: {error.error_type}" if error.error_type else "quota_exhausted"
            self._block(scope, self._clock() + max(0.0, seconds), reason, error.reset_at)
        elif isinstance(error, RateLimited):
            wait = error.retry_after_s
            if wait is not None and wait > self.long_wait_s:
                self._block(scope, self._clock() + wait, "rate_limited", None)
            else:
                scope.cool_off(wait)
        elif isinstance(error, AuthenticationFailed) and scope is not self._own:
            # One subscription's credential refused: out until its re-probe time (a provider-wide refusal is the
            # circuit breaker's to judge). Without a time, the no-reset block.
            seconds = self._seconds_until(error.reset_at)
            if seconds is None:
                seconds = error.retry_after_s if error.retry_after_s is not None else NO_RESET_BLOCK_S
            self._block(scope, self._clock() + max(0.0, seconds), _AUTH_REASON, error.reset_at)

    def too_large(self, prompt_tokens: int) -> str | None:
        """Why a prompt this large can never be sent here (it exceeds the reported per-minute input-token limit),
        or None."""
        limit = self.input_tokens_limit
        if limit is None or prompt_tokens <= limit:
            return None
        return f"{TOO_LARGE}: {prompt_tokens:,} input tokens, over its limit of {limit:,.0f} a minute"

    def on_signal(self, signal: QuotaSignal) -> None:
        self._below = False
        if signal.limit_kind == INPUT_TOKENS and signal.limit:
            # The latest report wins: a limit rises with the account's tier.
            self.input_tokens_limit = signal.limit
        scope = self._scope_for(signal.subscription)
        if signal.limit_kind == CREDENTIALS_CHANGED:
            # The provider saw a refused subscription's credentials change: it may be tried again at once.
            if signal.status == "allowed" and scope.blocked_reason == _AUTH_REASON and scope.unblock() is not None:
                self._emit(QUOTA_RESET, {"previous": _AUTH_REASON}, scope.subscription)
            return
        seconds = self._seconds_until(signal.reset_at)
        if signal.status == "rejected" or (signal.remaining is not None and signal.remaining <= 0):
            if seconds is None:
                seconds = NO_RESET_BLOCK_S if signal.limit_kind in _SPEND_KINDS else REJECTED_BLOCK_S
            self._block(scope, self._clock() + seconds, f"{signal.limit_kind} exhausted", signal.reset_at)
            return
        utilization = signal.utilization
        if utilization is None and signal.limit and signal.remaining is not None:
            utilization = 1.0 - signal.remaining / signal.limit
        if signal.status == "allowed_warning":
            utilization = max(utilization or 0.0, self.switch_threshold)
        if utilization is not None:
            scope.report(signal.limit_kind, utilization, self._clock() + (seconds if seconds is not None else 60.0))
            self.watched = True
            self._check_near()

    def set_observer(self, observer: RoutingObserver | None) -> None:
        self._observer = observer

    def block_until(self, until: float, reason: str, subscription: str | None = None) -> None:
        """Keep the provider (or a subscription) out until `until` on this quota's clock, quietly: another
        process reported the block."""
        self._below = False
        self._scope_for(subscription).block(until, reason)

    def blocked_until_of(self, subscription: str | None = None) -> float | None:
        scope = self._own if subscription is None else self._subs.get(subscription)
        return None if scope is None else scope.blocked_until

    def reset(self, subscription: str | None = None) -> None:
        """A reset by hand: the scope's block, cool-off and window usage cleared (a subscription's, or all)."""
        self._below = False
        scopes = [self._scope_for(subscription)] if subscription else [self._own, *self._subs.values()]
        for scope in scopes:
            scope.unblock()
            scope.succeeded()
            scope.tracker = type(scope.tracker)(scope.tracker.limits, self._clock)

    # --- restarts and updates ---------------------------------------------------------------------

    def restore_usage(self, calls: Iterable[PastCall]) -> None:
        """Replay recorded attempts (from the ledger) into the windows after a restart; O(n log n)."""
        self._below = False
        own: list[tuple[float, float, float]] = []
        by_sub: dict[str, list[tuple[float, float, float]]] = {}
        for ago, tokens, cost, subscription in calls:
            own.append((ago, tokens, cost))
            if subscription in self._subs:
                by_sub.setdefault(subscription, []).append((ago, tokens, cost))  # type: ignore[arg-type]
        if self._own.specs:
            self._own.tracker.load(own)
        for name, rows in by_sub.items():
            if self._subs[name].specs:
                self._subs[name].tracker.load(rows)
        if own:
            self._restored_at = self._clock()
            # Already past the threshold: the run that took it there reported the crossing.
            self._near = self._near or self.pressure() >= self.switch_threshold

    def restore(self, seconds_ago: float, tokens: float, cost: float, subscription: str | None = None) -> None:
        """Replay one recorded attempt; `restore_usage` does many at once."""
        self.restore_usage([(seconds_ago, tokens, cost, subscription)])

    def restore_block(self, reset_at: datetime, reason: str, subscription: str | None = None) -> None:
        self._below = False
        seconds = self._seconds_until(reset_at)
        if seconds is not None and seconds > 0:
            self._scope_for(subscription).block(self._clock() + seconds, reason)

    def clear_block(self, subscription: str | None = None) -> None:
        self._below = False
        self._scope_for(subscription).unblock()

    def carry_over(self, old: ProviderQuota) -> None:
        """Keep what `old` knew (windows of the limits both have, blocks, cool-offs, reports) across an update."""
        self._below = False
        self._own.carry_over(old._own)
        for name, sub in self._subs.items():
            if name in old._subs:
                sub.carry_over(old._subs[name])
        self._sub_affinity = OrderedDict(old._sub_affinity)
        self._near = old._near
        self._restored_at = old._restored_at
        self.watched = self.watched or old.watched

    # --- internals --------------------------------------------------------------------------------

    def scopes(self) -> list[QuotaScope]:
        """The provider's own scope, then one per subscription (read by routing.views for live state)."""
        return [self._own, *self._subs.values()]

    def soonest_exhaustion(self) -> tuple[str, float] | None:
        """(limit, seconds) of the provider's forecast exhaustion at the recent rate, or None."""
        return self._soonest_exhaustion(self._clock())

    def _scope_for(self, subscription: str | None) -> QuotaScope:
        if not self._subs or not subscription:
            return self._own
        scope = self._subs.get(subscription)
        if scope is None:  # reported by the provider but not configured: track it, without limits
            scope = self._subs[subscription] = QuotaScope(subscription, Limits(), self._clock)
        return scope

    def _scope_refusal(self, scope: QuotaScope, now: float, tokens: float, cost: float, share: float) -> str | None:
        if scope.blocked_until is not None and now >= scope.blocked_until:
            previous = scope.unblock()
            self._emit(QUOTA_RESET, {"previous": previous}, scope.subscription)
        return scope.refusal(now, tokens, cost, share)

    @staticmethod
    def _explain(reason: str) -> str:
        return reason if reason.startswith("rate_limited: cooling off") else f"quota: {reason}"

    def _pick(self, usable: list[QuotaScope], affinity: str | None, now: float) -> str | None:
        if affinity is not None:
            pinned = self._sub_affinity.get(affinity)
            if any(s.subscription == pinned for s in usable):
                return pinned
        return min(usable, key=lambda s: s.pressure(now)).subscription

    def _seconds_until(self, at: datetime | None) -> float | None:
        return None if at is None else (at - self._wall()).total_seconds()

    def _block(self, scope: QuotaScope, until: float, reason: str, reset_at: datetime | None) -> None:
        if not scope.block(until, reason):
            return
        reset = reset_at or self._wall() + timedelta(seconds=until - self._clock())
        self._emit(QUOTA_BLOCKED, {"reason": reason, "reset_at": reset.isoformat()}, scope.subscription)

    def _check_near(self, refused: str | None = None) -> None:
        """Report a crossing (threshold, limit share refused, or forecast within the horizon) once; re-arm once
        usage has fallen well below the threshold with no forecast inside the horizon."""
        pressure = self.pressure()
        above = pressure >= self.switch_threshold
        self._below = not above
        if self._near:
            low = pressure <= REARM_FRACTION * self.switch_threshold
            if low and refused is None and self._forecast_within() is None:
                self._near = False
            return
        forecast = None
        if above:
            trigger = "threshold"
        elif refused is not None:
            trigger = "limit_share"
        else:
            forecast = self._forecast_within()
            if forecast is None:
                return
            trigger = "forecast"
        self._near = True
        if forecast is None and self.forecast_horizon_s is not None:
            forecast = self._forecast_within()
        if forecast is None:
            forecast = self._soonest_exhaustion(self._clock())
        detail: dict[str, object] = {
            "trigger": trigger,
            "pressure": round(pressure, 4),
            "threshold": self.switch_threshold,
            "limit": forecast[0] if forecast else None,
            "exhausted_in_s": round(forecast[1], 1) if forecast else None,
            "horizon_s": self.forecast_horizon_s,
        }
        if refused is not None:
            detail["refused"] = refused
        self._emit(QUOTA_FORECAST_CROSSED, detail)

    def _forecast_within(self) -> tuple[str, float] | None:
        """(limit, seconds) of the limit forecast to run out within the horizon, or None; recomputed at most once
        every FORECAST_EVERY_S."""
        horizon = self.forecast_horizon_s
        if horizon is None:
            return None
        now = self._clock()
        if now >= self._forecast_next:
            self._forecast_next = now + FORECAST_EVERY_S
            soonest = self._soonest_exhaustion(now)
            self._forecast = soonest if soonest is not None and soonest[1] <= horizon else None
        return self._forecast

    def _soonest_exhaustion(self, now: float) -> tuple[str, float] | None:
        """When the provider runs out at the recent rate: its own first limit, or (with subscriptions) when the
        last of them does. Only windows whose forecast can be trusted (see `_restored_at`) count."""
        if self._own.specs:
            own = self._scope_exhaustion(self._own, now)
            if own is not None:
                return own
        limited = [sub for sub in self._subs.values() if sub.specs]
        if not limited or len(limited) < len(self._subs):
            return None  # a subscription without limits never runs out, nor then does the provider
        per_sub = [self._scope_exhaustion(sub, now) for sub in limited]
        if any(f is None for f in per_sub):
            return None
        return max(per_sub, key=lambda f: f[1])  # type: ignore[arg-type,return-value]

    def _scope_exhaustion(self, scope: QuotaScope, now: float) -> tuple[str, float] | None:
        restored = self._restored_at
        forecasts = [
            (seconds, name)
            for name, seconds in scope.tracker.forecast_exhaustion().items()
            if seconds is not None and (restored is None or now - restored >= _SPANS.get(name, 0.0))
        ]
        if not forecasts:
            return None
        seconds, name = min(forecasts)
        return name, seconds

    def _emit(self, kind: str, detail: dict[str, object], subscription: str | None = None) -> None:
        if self._observer is not None:
            self._observer(
                RoutingEvent(kind=kind, provider_id=self.provider_id, subscription=subscription, detail=dict(detail))
            )
