"""The subscriptions behind one `claude_cli` provider: which one serves the next call, and which are out.

Rotation is round-robin over usable subscriptions, preferring ones without a rate-limit warning. Affinity
keys stay on the subscription that served them (keeps the CLI's prompt cache and session on one account).
A subscription that hit its usage limit is skipped until its reset, then gets one trial call: success puts
it back in rotation, failure puts it out again. One whose credential was refused is out for `auth_reprobe_s`,
or until its credential's fingerprint changes (a new login, another key value). Client-side limits come from
`usage_window.LimitTracker`.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict

from providers.base import Limits
from providers.errors import (
    AuthenticationFailed,
    BadRequest,
    ProviderError,
    QuotaExhausted,
    RateLimited,
)
from providers.usage_window import LimitTracker

log = logging.getLogger(__name__)

# How long a subscription sits out after errors that carry no reset time of their own.
_RATE_LIMITED_COOLDOWN_S = 60.0
_FAILED_TRIAL_COOLDOWN_S = 300.0
AUTH_REASON = "authentication"
# Bounds the affinity map; the oldest keys are forgotten first.
_MAX_AFFINITY_KEYS = 10_000

SubscriptionKind = Literal["config_dir", "api_key_env", "default"]
SubscriptionState = Literal["available", "warning", "over_limit", "out", "probe_due", "probing"]


class SubscriptionStatus(BaseModel):
    """One subscription's state and counters, for `switchboard providers`. Holds no secret values."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    kind: SubscriptionKind
    state: SubscriptionState
    config_dir: str | None = None
    api_key_env: str | None = None
    out_reason: str | None = None
    reset_at: datetime | None = None
    requests: int = 0
    successes: int = 0
    failures: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    last_outcome: str | None = None
    # Fraction used of each client-side limit, e.g. {"requests_per_hour": 0.4}.
    limit_utilization: dict[str, float] = {}
    # Latest server-reported utilization by rate-limit type, e.g. {"five_hour": 0.92}.
    quota_utilization: dict[str, float] = {}


@dataclass
class Subscription:
    """Mutable runtime state of one subscription; only the pool changes it."""

    name: str
    kind: SubscriptionKind
    tracker: LimitTracker
    config_dir: str | None = None
    api_key_env: str | None = None
    out_until: float | None = None  # monotonic deadline
    reset_at: datetime | None = None
    out_reason: str | None = None
    probing: bool = False
    # Rate-limit type -> monotonic time until which its allowed_warning holds.
    warnings: dict[str, float] = field(default_factory=dict)
    quota_utilization: dict[str, float] = field(default_factory=dict)
    requests: int = 0
    successes: int = 0
    failures: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    last_outcome: str | None = None
    # The credential's fingerprint when it was refused; a different one now means it changed.
    refused_credential: str | None = None


class SubscriptionPool:
    """Chooses and tracks subscriptions. Synchronous on purpose: one event loop, no awaits between check and take."""

    def __init__(
        self,
        provider_id: str,
        subscriptions: list[Subscription],
        *,
        clock: Callable[[], float],
        wall_clock: Callable[[], datetime],
        auth_reprobe_s: float = 300.0,
        fingerprint: Callable[[Subscription], str] | None = None,
    ) -> None:
        if not subscriptions:
            raise ValueError("a pool needs at least one subscription")
        self.provider_id = provider_id
        self._subs = subscriptions
        self._by_name = {s.name: s for s in subscriptions}
        self._clock = clock
        self._wall_clock = wall_clock
        self._cursor = 0
        self._affinity: OrderedDict[str, str] = OrderedDict()
        self._auth_reprobe_s = auth_reprobe_s
        self._fingerprint = fingerprint

    @staticmethod
    def make(
        name: str,
        kind: SubscriptionKind,
        limits: Limits,
        clock: Callable[[], float],
        *,
        config_dir: str | None = None,
        api_key_env: str | None = None,
    ) -> Subscription:
        return Subscription(
            name=name, kind=kind, tracker=LimitTracker(limits, clock), config_dir=config_dir, api_key_env=api_key_env
        )

    @property
    def subscriptions(self) -> list[Subscription]:
        return list(self._subs)

    # --- choosing ------------------------------------------------------------------------------

    def acquire(
        self, *, forced: str | None = None, affinity: str | None = None, tokens: float = 0, cost: float = 0.0
    ) -> Subscription:
        """Take a subscription for one call and count the request; raise `QuotaExhausted` if none can take it."""
        if forced is not None:
            sub = self._by_name.get(forced)
            if sub is None:
                raise BadRequest(
                    f"unknown subscription {forced!r}", provider_id=self.provider_id, error_type="unknown_subscription"
                )
            if not self._usable(sub, tokens, cost):
                raise self._exhausted([sub], tokens, cost, whole_pool=False)
            return self._take(sub)
        if affinity is not None:
            pinned = self._by_name.get(self._affinity.get(affinity, ""))
            if pinned is not None and self._usable(pinned, tokens, cost):
                return self._take(pinned)
        n = len(self._subs)
        order = [self._subs[(self._cursor + i) % n] for i in range(n)]
        usable = [s for s in order if self._usable(s, tokens, cost)]
        if not usable:
            # Not one subscription's error: the provider as a whole cannot serve until the earliest comes back.
            raise self._exhausted(self._subs, tokens, cost, whole_pool=True)
        # A warned subscription is still usable, but only once every unwarned one is not.
        preferred = [s for s in usable if not self._warned(s)] or usable
        chosen = preferred[0]
        self._cursor = (self._subs.index(chosen) + 1) % n
        return self._take(chosen)

    def _take(self, sub: Subscription) -> Subscription:
        if self.state(sub) == "probe_due":
            sub.probing = True  # the one trial call; others skip it until the verdict
        sub.requests += 1
        # Count the request now so concurrent calls see it; tokens and cost follow in record_usage.
        sub.tracker.record(requests=1)
        return sub

    def _usable(self, sub: Subscription, tokens: float, cost: float) -> bool:
        if self.state(sub) in ("out", "probing"):
            return False
        return sub.tracker.would_exceed(tokens=tokens, cost=cost) is None

    def _warned(self, sub: Subscription) -> bool:
        now = self._clock()
        return any(until > now for until in sub.warnings.values())

    def state(self, sub: Subscription) -> SubscriptionState:
        if sub.out_until is not None:
            if sub.probing:
                return "probing"
            return "out" if self._clock() < sub.out_until else "probe_due"
        if sub.tracker.would_exceed() is not None:
            return "over_limit"
        return "warning" if self._warned(sub) else "available"

    def _soonest(
        self, subs: list[Subscription], tokens: float, cost: float
    ) -> tuple[datetime, Subscription, str] | None:
        """The earliest moment one of `subs` could take this call, which one, and why it cannot now."""
        now_wall = self._wall_clock()
        soonest: tuple[datetime, Subscription, str] | None = None
        for sub in subs:
            state = self.state(sub)
            if state in ("out", "probing"):
                at, reason = sub.reset_at or now_wall, sub.out_reason or "out"
            else:
                wait = sub.tracker.available_in(tokens=tokens, cost=cost)
                if math.isinf(wait):
                    continue
                at, reason = now_wall + timedelta(seconds=wait), "client_limit"
            if soonest is None or at < soonest[0]:
                soonest = (at, sub, reason)
        return soonest

    def _exhausted(self, subs: list[Subscription], tokens: float, cost: float, *, whole_pool: bool) -> QuotaExhausted:
        """The error for "nothing can take this call", carrying the earliest time one could.

        With `whole_pool` the error names no subscription: the provider itself is out until `reset_at`, which
        is what routing needs to hear to stop sending it tasks (a subscription's own error only rotates).
        """
        names = ", ".join(s.name for s in subs)
        soonest = self._soonest(subs, tokens, cost)
        if soonest is None:
            return QuotaExhausted(
                f"the task is larger than the client-side limits of {names}",
                provider_id=self.provider_id,
                error_type="client_limit",
                subscription=None if whole_pool else subs[0].name,
            )
        at, sub, reason = soonest
        now_wall = self._wall_clock()
        message = (
            f"no usable subscription ({names}); the earliest ({sub.name}) frees up at {at.isoformat()}"
            if whole_pool
            else f"subscription {sub.name} cannot take a call before {at.isoformat()} ({reason})"
        )
        return QuotaExhausted(
            message,
            provider_id=self.provider_id,
            error_type=reason,
            reset_at=at,
            retry_after_s=max(0.0, (at - now_wall).total_seconds()),
            subscription=None if whole_pool else sub.name,
        )

    # --- outcomes ------------------------------------------------------------------------------

    def record_usage(self, sub: Subscription, tokens: int, cost: float) -> None:
        """Tokens and cost of a finished call, failed or not (a failed agent run can still cost money)."""
        sub.tokens += tokens
        sub.cost_usd += cost
        sub.tracker.record(tokens=tokens, cost=cost, requests=0)

    def succeeded(self, sub: Subscription, affinity: str | None) -> None:
        sub.successes += 1
        sub.last_outcome = "success"
        if sub.probing or (sub.out_until is not None and self._clock() >= sub.out_until):
            self._restore(sub)
        if affinity is not None:
            self._affinity[affinity] = sub.name
            self._affinity.move_to_end(affinity)
            while len(self._affinity) > _MAX_AFFINITY_KEYS:
                self._affinity.popitem(last=False)

    def failed(self, sub: Subscription, error: ProviderError) -> None:
        sub.failures += 1
        sub.last_outcome = error.outcome
        was_trial, sub.probing = sub.probing, False
        now_wall = self._wall_clock()
        if isinstance(error, QuotaExhausted):
            reset = error.reset_at or now_wall + timedelta(seconds=_FAILED_TRIAL_COOLDOWN_S)
            self.mark_out(sub, reset, error.error_type or "quota_exhausted")
        elif isinstance(error, RateLimited):
            self.mark_out(
                sub, now_wall + timedelta(seconds=error.retry_after_s or _RATE_LIMITED_COOLDOWN_S), "rate_limited"
            )
        elif isinstance(error, AuthenticationFailed):
            reset = error.reset_at or now_wall + timedelta(seconds=self._auth_reprobe_s)
            self.mark_out(sub, reset, AUTH_REASON)
            sub.refused_credential = self._fingerprint(sub) if self._fingerprint is not None else None
        elif was_trial and error.failover_helps:
            # The trial said nothing good about this subscription; wait before trying it again.
            self.mark_out(sub, now_wall + timedelta(seconds=_FAILED_TRIAL_COOLDOWN_S), sub.out_reason or "trial_failed")
        # Other errors (the task's own fault, or provider-wide trouble) leave the subscription's state alone;
        # the routing layer's circuit breaker judges the provider as a whole.

    def cancelled(self, sub: Subscription) -> None:
        """A call stopped by us: no verdict on the subscription, so a pending trial may run again."""
        sub.last_outcome = "cancelled"
        sub.probing = False

    def mark_out(self, sub: Subscription, reset_at: datetime, reason: str) -> None:
        """Take a subscription out of rotation until `reset_at` (then it gets one trial call)."""
        wait_s = max(0.0, (reset_at - self._wall_clock()).total_seconds())
        until = self._clock() + wait_s
        # Keep the later deadline: a rejection for the weekly limit outlasts a five-hour one seen in the same run.
        if sub.out_until is None or until > sub.out_until or self._clock() >= sub.out_until:
            sub.out_until, sub.reset_at, sub.out_reason = until, reset_at, reason
            log.info("%s: subscription %s out until %s (%s)", self.provider_id, sub.name, reset_at.isoformat(), reason)

    def _restore(self, sub: Subscription) -> None:
        log.info("%s: subscription %s is back in rotation", self.provider_id, sub.name)
        sub.out_until = sub.reset_at = sub.out_reason = sub.refused_credential = None
        sub.probing = False

    def refresh_credentials(self) -> list[Subscription]:
        """Put back the subscriptions out for a refused credential that has changed since; return them."""
        if self._fingerprint is None:
            return []
        back = []
        for sub in self._subs:
            if sub.out_reason != AUTH_REASON or sub.refused_credential is None or sub.probing:
                continue
            if self._fingerprint(sub) != sub.refused_credential:
                log.info("%s: subscription %s has new credentials", self.provider_id, sub.name)
                self._restore(sub)
                back.append(sub)
        return back

    def warn(self, sub: Subscription, limit_kind: str, until: datetime | None) -> None:
        """An `allowed_warning`: prefer other subscriptions until the limit resets or an `allowed` follows."""
        wait_s = 3600.0 if until is None else max(0.0, (until - self._wall_clock()).total_seconds())
        sub.warnings[limit_kind] = self._clock() + wait_s

    def clear_warning(self, sub: Subscription, limit_kind: str) -> None:
        sub.warnings.pop(limit_kind, None)

    # --- reporting -----------------------------------------------------------------------------

    def status(self) -> list[SubscriptionStatus]:
        return [
            SubscriptionStatus(
                name=s.name,
                kind=s.kind,
                state=self.state(s),
                config_dir=s.config_dir,
                api_key_env=s.api_key_env,
                out_reason=s.out_reason,
                reset_at=s.reset_at,
                requests=s.requests,
                successes=s.successes,
                failures=s.failures,
                tokens=s.tokens,
                cost_usd=round(s.cost_usd, 6),
                last_outcome=s.last_outcome,
                limit_utilization=s.tracker.utilization(),
                quota_utilization=dict(s.quota_utilization),
            )
            for s in self._subs
        ]

    def exhausted_until(self) -> datetime | None:
        """When the first subscription can take a call again, if none can take one now; else None."""
        if any(self._usable(s, 0, 0.0) for s in self._subs):
            return None
        soonest = self._soonest(self._subs, 0, 0.0)
        return soonest[0] if soonest is not None else None
