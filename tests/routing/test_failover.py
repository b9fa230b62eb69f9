"""The failover decision for each error class."""

from __future__ import annotations

import random

import pytest
from pydantic import ValidationError

from providers import (
    AuthenticationFailed,
    BadRequest,
    BudgetExceeded,
    Cancelled,
    MalformedResponse,
    Overloaded,
    ProviderError,
    ProviderTimeout,
    QuotaExhausted,
    RateLimited,
    Unavailable,
)
from routing.failover import FailOver, FailoverPolicy, FailoverSettings, Retry, Stop


class FixedRandom(random.Random):
    """random() always returns the same value, so delays are exact."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def delay(decision: object) -> float:
    assert isinstance(decision, Retry), decision
    return decision.delay_s


def policy(value: float = 0.5, **settings: float) -> FailoverPolicy:
    return FailoverPolicy(FailoverSettings(**settings), rng=FixedRandom(value))


@pytest.mark.parametrize(
    "error",
    [
        RateLimited("slow down", retry_after_s=60.0),
        RateLimited("slow down"),
        QuotaExhausted("monthly quota used up"),
        Unavailable("503"),
        ProviderTimeout("no answer in 120 s"),
        AuthenticationFailed("bad key"),
        MalformedResponse("truncated JSON"),
        ProviderError("unclassified"),
    ],
    ids=lambda e: f"{e.outcome}-{e.retry_after_s}",
)
def test_errors_another_provider_may_not_have_fail_over_at_once(error: ProviderError) -> None:
    assert policy().decide(error, attempt=1) == FailOver()


@pytest.mark.parametrize("error", [BadRequest("prompt too long"), BudgetExceeded("run budget"), Cancelled("user")])
def test_caller_side_errors_stop(error: ProviderError) -> None:
    assert policy().decide(error, attempt=1) == Stop()


def test_short_rate_limit_waits_the_retry_after_plus_small_jitter() -> None:
    error = RateLimited("slow down", retry_after_s=2.0)
    assert policy(0.0).decide(error, attempt=1) == Retry(2.0)
    # At most jitter * retry_base_s extra: 0.5 * 0.2 = 0.1 s.
    assert delay(policy(0.999999).decide(error, attempt=1)) == pytest.approx(2.1, abs=1e-5)


def test_rate_limit_longer_than_the_retry_cap_fails_over() -> None:
    error = RateLimited("slow down", retry_after_s=4.0)
    assert policy(retry_max_s=3.0).decide(error, attempt=1) == FailOver()


def test_overloaded_backs_off_exponentially_with_jitter() -> None:
    p = policy(0.5, retry_base_s=0.2, max_same_provider_retries=4)  # 0.5 = jitter factor exactly 1
    delays = [delay(p.decide(Overloaded("busy"), attempt=a)) for a in (1, 2, 3, 4)]
    assert delays == pytest.approx([0.2, 0.4, 0.8, 1.6])
    low = policy(0.0, retry_base_s=0.2, jitter=0.5).decide(Overloaded("busy"), attempt=1)
    high = policy(0.999999, retry_base_s=0.2, jitter=0.5).decide(Overloaded("busy"), attempt=1)
    assert delay(low) == pytest.approx(0.1)
    assert delay(high) == pytest.approx(0.3, abs=1e-5)


def test_backoff_never_exceeds_retry_max() -> None:
    p = policy(0.999999, retry_base_s=1.0, retry_max_s=5.0, max_same_provider_retries=10)
    assert delay(p.decide(Overloaded("busy"), attempt=8)) == pytest.approx(5.0)


def test_overloaded_with_retry_after_waits_what_the_provider_asked() -> None:
    assert policy(0.0).decide(Overloaded("busy", retry_after_s=3.0), attempt=1) == Retry(3.0)


def test_same_provider_retries_are_limited_then_fail_over() -> None:
    p = policy(max_same_provider_retries=1)
    assert isinstance(p.decide(Overloaded("busy"), attempt=1), Retry)
    assert p.decide(Overloaded("busy"), attempt=2) == FailOver()
    assert policy(max_same_provider_retries=0).decide(Overloaded("busy"), attempt=1) == FailOver()


def test_default_rng_gives_delays_within_the_jitter_band() -> None:
    p = FailoverPolicy()
    for _ in range(200):
        assert 0.1 <= delay(p.decide(Overloaded("busy"), attempt=1)) <= 0.3


def test_settings_reject_unknown_keys_and_bad_jitter() -> None:
    with pytest.raises(ValidationError):
        FailoverSettings(retries=3)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        FailoverSettings(jitter=1.5)
