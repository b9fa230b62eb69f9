"""Quota state of a provider and its subscriptions: signals per window family, blocks, rate-limit cool-offs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from providers import Limits, QuotaExhausted, QuotaSignal, RateLimited
from routing.events import QUOTA_BLOCKED, RoutingEvent
from routing.quota import NO_RESET_BLOCK_S, ProviderQuota
from tests.routing.engine_kit import FakeClock, calls, engine, tasks


class WallClock:
    """UTC wall time that moves together with a FakeClock."""

    def __init__(self, clock: FakeClock) -> None:
        self._clock = clock
        self._origin = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
        self._start = clock.now

    def __call__(self) -> datetime:
        return self._origin + timedelta(seconds=self._clock.now - self._start)


def _quota(clock: FakeClock, events: list[RoutingEvent] | None = None, **kw: object) -> ProviderQuota:
    return ProviderQuota(
        "p",
        kw.pop("limits", Limits()),  # type: ignore[arg-type]
        clock=clock,
        wall_clock=WallClock(clock),
        observer=events.append if events is not None else None,
        **kw,  # type: ignore[arg-type]
    )


def _signal(kind: str, utilization: float, wall: datetime, reset_in_s: float, **kw: object) -> QuotaSignal:
    return QuotaSignal(
        provider_id="p", limit_kind=kind, utilization=utilization, reset_at=wall + timedelta(seconds=reset_in_s), **kw
    )


def test_the_highest_window_family_sets_the_pressure_until_its_own_reset() -> None:
    clock = FakeClock()
    wall = WallClock(clock)
    quota = _quota(clock)
    quota.on_signal(_signal("requests", 0.96, wall(), 50))
    for kind, util in [("tokens", 0.10), ("input_tokens", 0.10), ("output_tokens", 0.02)]:
        quota.on_signal(_signal(kind, util, wall(), 300))
    assert quota.pressure() == pytest.approx(0.96) and quota.over_threshold()
    clock.now += 51  # the requests window resets; the token families still hold
    assert quota.pressure() == pytest.approx(0.10) and not quota.over_threshold()


def test_a_newer_reading_of_the_same_family_replaces_the_older_one() -> None:
    clock = FakeClock()
    quota = _quota(clock)
    quota.on_signal(_signal("requests", 0.95, WallClock(clock)(), 50))
    quota.on_signal(_signal("requests", 0.20, WallClock(clock)(), 50))
    assert quota.pressure() == pytest.approx(0.20)


def _subscribed(clock: FakeClock, events: list[RoutingEvent] | None = None) -> ProviderQuota:
    return _quota(clock, events, subscriptions={"a": Limits(), "b": Limits(requests_per_hour=10)})


def test_a_provider_is_near_its_limit_only_when_every_subscription_is() -> None:
    clock = FakeClock()
    wall = WallClock(clock)
    quota = _subscribed(clock)
    quota.on_signal(_signal("five_hour", 0.5, wall(), 600, subscription="a", status="allowed_warning"))
    assert quota.pressure() == 0.0 and not quota.over_threshold()  # b is untouched
    quota.on_signal(_signal("five_hour", 0.95, wall(), 600, subscription="b"))
    assert quota.over_threshold()  # a warned (counts as the threshold), b at 95%
    assert quota.pressure() == pytest.approx(0.9)  # the least-used subscription's figure


def test_a_provider_is_out_when_every_subscription_is_and_names_a_usable_one_before() -> None:
    clock = FakeClock()
    events: list[RoutingEvent] = []
    quota = _subscribed(clock, events)
    reset = WallClock(clock)() + timedelta(hours=2)
    quota.on_error(QuotaExhausted("usage limit", error_type="usage_limit", reset_at=reset, subscription="a"))
    assert quota.refusal(10, 0.0, critical=False) is None
    # routing knows "a" is out: the call must use "b" (the provider may not know, e.g. after a restart)
    assert quota.admission(10, 0.0, critical=False, affinity=None) == (None, "b")
    quota.on_signal(QuotaSignal(provider_id="p", subscription="b", limit_kind="five_hour", status="rejected"))
    reason = quota.refusal(10, 0.0, critical=False)
    assert reason is not None and reason.startswith("quota: every subscription is out (a: quota_exhausted: usage_limit")
    assert [(e.kind, e.subscription) for e in events] == [(QUOTA_BLOCKED, "a"), (QUOTA_BLOCKED, "b")]


def test_a_subscriptions_own_limit_is_counted_from_the_answers_and_rules_it_out() -> None:
    clock = FakeClock()
    quota = _quota(clock, subscriptions={"a": Limits(requests_per_hour=2), "b": Limits()})
    for _ in range(2):
        quota.begin()
        quota.settle(100, 0.0, subscription="a")
    assert quota.admission(10, 0.0, critical=True, affinity=None) == (None, "b")


def test_a_quota_error_without_a_reset_blocks_for_an_hour_not_a_minute() -> None:
    clock = FakeClock()
    quota = _quota(clock)
    quota.on_error(QuotaExhausted("credit balance is too low", error_type="insufficient_quota"))
    clock.now += 61
    assert (quota.refusal(1, 0.0, critical=True) or "").startswith("quota: quota_exhausted: insufficient_quota")
    clock.now += NO_RESET_BLOCK_S - 61
    assert quota.refusal(1, 0.0, critical=True) is None


def test_a_rejected_spend_signal_without_a_reset_blocks_for_an_hour() -> None:
    clock = FakeClock()
    quota = _quota(clock)
    quota.on_signal(QuotaSignal(provider_id="p", limit_kind="spend", utilization=1.0, status="rejected"))
    clock.now += 600
    assert quota.refusal(1, 0.0, critical=True) == "quota: spend exhausted (resets in 3000s)"


def test_rate_limits_without_retry_after_cool_off_growing_and_reset_on_success() -> None:
    clock = FakeClock()
    quota = _quota(clock)
    lengths = []
    for _ in range(8):
        quota.on_error(RateLimited("slow down"))
        reason = quota.refusal(1, 0.0, critical=False) or ""
        assert reason.startswith("rate_limited: cooling off")
        lengths.append(float(reason.split("(")[1].split("s")[0]))
        clock.now += lengths[-1]
        assert quota.refusal(1, 0.0, critical=False) is None
    assert lengths == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    quota.on_success()
    quota.on_error(RateLimited("slow down"))
    assert quota.refusal(1, 0.0, critical=False) == "rate_limited: cooling off (1.0s left)"


def test_a_subscriptions_rate_limit_cools_off_that_subscription_only() -> None:
    clock = FakeClock()
    quota = _subscribed(clock)
    quota.on_error(RateLimited("slow down", subscription="a"))
    assert quota.admission(1, 0.0, critical=False, affinity=None) == (None, "b")
    quota.on_error(RateLimited("slow down", subscription="b"))
    reason = quota.refusal(1, 0.0, critical=False) or ""
    assert "every subscription is out" in reason and "a: rate_limited: cooling off" in reason


async def test_rate_limited_without_retry_after_is_remembered_across_sequential_tasks() -> None:
    clock = FakeClock()
    router = engine(
        {"rl": {"priority": 1, "failure_rate": 1.0, "fail_with": "rate_limited"}, "ok": {"priority": 2}}, clock
    )
    results = [await router.route(t) for t in tasks(30)]
    assert calls(results, "rl") == 1 and all(r.provider_id == "ok" for r in results)
    assert results[-1].decision.skipped["rl"].startswith("rate_limited: cooling off")
    clock.now += 1.0  # the first cool-off (1 s) is over: one more try, then 2 s
    again = [await router.route(t) for t in tasks(5, prefix="again")]
    assert calls(again, "rl") == 1
    clock.now += 1.0
    assert calls([await router.route(tasks(1, prefix="still")[0])], "rl") == 0


def test_a_provider_past_the_switch_threshold_comes_back_once_its_window_empties() -> None:
    clock = FakeClock()
    quota = _quota(clock, limits=Limits(requests_per_minute=10), switch_threshold=0.5)
    assert not quota.over_threshold()
    for _ in range(5):
        quota.begin()
        quota.settle(0, 0.0)
    assert quota.over_threshold()
    clock.now += 61
    assert not quota.over_threshold()
    quota.begin()
    assert not quota.over_threshold()  # 1 of 10
