"""What to do after a failed attempt: retry the same provider, fail over to the next, or stop.

    error                               decision
    retry_helps and retries left        Retry(delay_s)   retry_after given: wait it (+ a little jitter)
                                                         otherwise: exponential backoff with jitter
    otherwise, failover_helps           FailOver         (rate_limited with a long wait, quota, timeout, ...)
    otherwise                           Stop             (bad_request, budget_exceeded, cancelled)

Which errors retry or fail over is the error's own knowledge (`providers.errors`); this module adds only
how long to wait and how often to try the same provider. The task's attempt budget and the run's cost
budget are the routing step's to enforce.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from providers import ProviderError


class FailoverSettings(BaseModel):
    """Retry timing and the same-provider retry limit; part of the routing config."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    retry_base_s: float = Field(default=0.2, ge=0)
    retry_max_s: float = Field(default=5.0, ge=0)
    # Fraction of the backoff delay randomised either way, so synchronized callers spread out.
    jitter: float = Field(default=0.5, ge=0, le=1)
    max_same_provider_retries: int = Field(default=1, ge=0)


@dataclass(frozen=True, slots=True)
class Retry:
    """Call the same provider again after `delay_s` seconds."""

    delay_s: float


@dataclass(frozen=True, slots=True)
class FailOver:
    """Move on to the next candidate provider."""


@dataclass(frozen=True, slots=True)
class Stop:
    """Give up on the task: another provider would fail the same way."""


Decision = Retry | FailOver | Stop

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
        # A requested wait longer than the cap is better spent on another provider.
        wait_ok = error.retry_after_s is None or error.retry_after_s <= s.retry_max_s
        if error.retry_helps and wait_ok and attempt <= s.max_same_provider_retries:
            return Retry(self._delay(error, attempt))
        if error.failover_helps:
            return _FAIL_OVER
        return _STOP

    def _delay(self, error: ProviderError, attempt: int) -> float:
        s = self.settings
        if error.retry_after_s is not None:
            # Never earlier than the provider asked (that just earns another rejection); add a little jitter,
            # at most jitter * retry_base_s, so callers released together do not all return at once.
            return max(0.0, error.retry_after_s) + s.retry_base_s * s.jitter * self._rng.random()
        backoff = min(s.retry_max_s, s.retry_base_s * 2 ** (attempt - 1))
        spread = 1.0 + s.jitter * (2.0 * self._rng.random() - 1.0)
        return min(s.retry_max_s, backoff * spread)
