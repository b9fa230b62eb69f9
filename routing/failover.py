"""What to do after a failed attempt: rotate to another subscription, retry, fail over to the next, or stop.

    error                                         decision
    about its own subscription (see below)        Rotate           the provider's next usable subscription
    retry_helps, a wait <= retry_max_s,           Retry(delay_s)   retry_after given: wait it (+ a little jitter)
      and retries left                                             otherwise: exponential backoff with jitter
    otherwise, failover_helps                     FailOver         (rate_limited with a long wait, quota, timeout, ...)
    otherwise                                     Stop             (bad_request, budget_exceeded, cancelled)

A subscription-scoped error names its subscription (`error.subscription`) and is about that subscription:
its usage limit or other quota (`quota_exhausted`, which a `rejected` rate-limit event also becomes), its
credential refused (`authentication`), or a rate limit with a wait longer than `retry_max_s` (or none). The
same task then goes to another subscription of the same provider at once; only when none is left does the
router treat it as a failover. Whole-provider errors (no subscription named, e.g. "no usable subscription")
fail over as before.

`retry_max_s` is the one short-retry threshold: a rate limit asking for a longer wait is better spent
elsewhere, in the router (here), in quota (a longer wait blocks the scope) and in providers that retry by
themselves (the router passes it on as `ExecutionContext.retry_max_s`). Which errors may retry or fail over
at all is the error's own knowledge (`providers.errors`); this module adds how long to wait and how often to
try the same provider. The task's attempt budget and the run's cost budget are the routing step's to enforce.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from providers import AuthenticationFailed, ProviderError, QuotaExhausted, RateLimited


class FailoverSettings(BaseModel):
    """Retry timing and the same-provider retry limit; part of the routing config."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    retry_base_s: float = Field(default=0.2, ge=0)
    # The longest wait worth spending on the same provider (a retry-after, a backoff); longer ones move on.
    retry_max_s: float = Field(default=5.0, ge=0)
    # Fraction of the backoff delay randomised either way, so synchronized callers spread out.
    jitter: float = Field(default=0.5, ge=0, le=1)
    max_same_provider_retries: int = Field(default=1, ge=0)


@dataclass(frozen=True, slots=True)
class Retry:
    """Call the same provider again after `delay_s` seconds."""

    delay_s: float


@dataclass(frozen=True, slots=True)
class Rotate:
    """Call the same provider again at once, on another of its subscriptions (the router picks which)."""


@dataclass(frozen=True, slots=True)
class FailOver:
    """Move on to the next candidate provider."""


@dataclass(frozen=True, slots=True)
class Stop:
    """Give up on the task: another provider would fail the same way."""


Decision = Retry | Rotate | FailOver | Stop

_ROTATE = Rotate()
_FAIL_OVER = FailOver()
_STOP = Stop()


class FailoverPolicy:
    """Decides the next step after a `ProviderError`; `rng` is injectable so tests get exact delays."""

    __slots__ = ("_rng", "settings")

    def __init__(self, settings: FailoverSettings | None = None, rng: random.Random | None = None) -> None:
        self.settings = settings if settings is not None else FailoverSettings()
        self._rng = rng if rng is not None else random.Random()

    def decide(self, error: ProviderError, attempt: int) -> Decision:
        """`attempt` counts calls made to this provider for this task, the failed one included (1 = first)."""
        s = self.settings
        if self.subscription_scoped(error):
            return _ROTATE
        # A requested wait longer than the cap is better spent on another provider.
        wait_ok = error.retry_after_s is None or error.retry_after_s <= s.retry_max_s
        if error.retry_helps and wait_ok and attempt <= s.max_same_provider_retries:
            return Retry(self._delay(error, attempt))
        if error.failover_helps:
            return _FAIL_OVER
        return _STOP

    def subscription_scoped(self, error: ProviderError) -> bool:
        """Whether `error` is one subscription's own trouble, which another subscription of the provider avoids."""
        if error.subscription is None:
            return False
        if isinstance(error, QuotaExhausted | AuthenticationFailed):
            return True
        if isinstance(error, RateLimited):
            return not self.short_wait(error.retry_after_s)
        return False

    def short_wait(self, seconds: float | None) -> bool:
        """Whether a requested wait is worth spending on the same provider (at most `retry_max_s`)."""
        return seconds is not None and seconds <= self.settings.retry_max_s

    def _delay(self, error: ProviderError, attempt: int) -> float:
        s = self.settings
        if error.retry_after_s is not None:
            # Never earlier than the provider asked (that just earns another rejection); add a little jitter,
            # at most jitter * retry_base_s, so callers released together do not all return at once.
            return max(0.0, error.retry_after_s) + s.retry_base_s * s.jitter * self._rng.random()
        backoff = min(s.retry_max_s, s.retry_base_s * 2 ** (attempt - 1))
        spread = 1.0 + s.jitter * (2.0 * self._rng.random() - 1.0)
        return min(s.retry_max_s, backoff * spread)
