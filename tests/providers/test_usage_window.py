"""Sliding-window counters and the limit tracker, on an injected clock (no sleeping)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from providers.base import Limits
from providers.usage_window import LimitTracker, SlidingWindow


class Clock:
    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_window_forgets_entries_once_they_are_a_full_span_old(clock: Clock) -> None:
    window = SlidingWindow(60, clock)
    window.add(2)
    clock.t = 30
    window.add(3)
    assert window.total() == 5
    clock.t = 59.9
    assert window.total() == 5
    clock.t = 60  # the first entry is exactly one span old
    assert window.total() == 3
    clock.t = 90
    assert window.total() == 0
    assert window.events() == []


def test_window_says_how_long_until_there_is_room(clock: Clock) -> None:
    window = SlidingWindow(60, clock)
    window.add(1)
    clock.t = 30
    window.add(1)
    clock.t = 40
    assert window.seconds_until_room(limit=2, extra=0) == 0
    assert window.seconds_until_room(limit=2, extra=1) == pytest.approx(20)  # the t=0 entry expires at 60
    assert window.seconds_until_room(limit=2, extra=2) == pytest.approx(50)  # both must expire
    assert math.isinf(window.seconds_until_room(limit=2, extra=3))


def test_same_instant_entries_are_coalesced(clock: Clock) -> None:
    window = SlidingWindow(60, clock)
    for _ in range(100):
        window.add(1)
    assert window.events() == [(0.0, 100.0)]


@pytest.mark.parametrize(
    ("limit", "value", "record", "check", "span", "used"),
    [
        ("requests_per_minute", 3, {"requests": 3}, {"requests": 1}, 60, 1.0),
        ("requests_per_hour", 3, {"requests": 3}, {"requests": 1}, 3600, 1.0),
        ("requests_per_day", 3, {"requests": 3}, {"requests": 1}, 86400, 1.0),
        ("tokens_per_minute", 1000, {"tokens": 900, "requests": 0}, {"tokens": 200}, 60, 0.9),
        ("tokens_per_hour", 1000, {"tokens": 900, "requests": 0}, {"tokens": 200}, 3600, 0.9),
        ("tokens_per_day", 1000, {"tokens": 900, "requests": 0}, {"tokens": 200}, 86400, 0.9),
        ("cost_usd_per_day", 1.0, {"cost": 0.95, "requests": 0}, {"cost": 0.1}, 86400, 0.95),
    ],
)
def test_each_limit_kind_blocks_until_its_window_rolls_over(
    clock: Clock,
    limit: str,
    value: float,
    record: dict[str, Any],
    check: dict[str, Any],
    span: float,
    used: float,
) -> None:
    tracker = LimitTracker(Limits(**{limit: value}), clock)
    assert tracker.would_exceed(**check) is None
    tracker.record(**record)
    assert tracker.would_exceed(**check) == limit
    assert tracker.utilization()[limit] == pytest.approx(used)
    clock.t = span - 1
    assert tracker.would_exceed(**check) == limit
    assert tracker.available_in(**check) == pytest.approx(1)
    clock.t = span
    assert tracker.would_exceed(**check) is None
    assert tracker.utilization()[limit] == 0


def test_the_shortest_window_is_reported_first(clock: Clock) -> None:
    tracker = LimitTracker(Limits(requests_per_minute=1, requests_per_day=1), clock)
    tracker.record()
    assert tracker.would_exceed() == "requests_per_minute"
    clock.t = 60
    assert tracker.would_exceed() == "requests_per_day"
    assert tracker.available_in() == pytest.approx(86400 - 60)


def test_the_window_slides_rather_than_resetting_on_a_boundary(clock: Clock) -> None:
    tracker = LimitTracker(Limits(requests_per_minute=2), clock)
    clock.t = 50
    tracker.record()
    clock.t = 55
    tracker.record()
    clock.t = 65  # a fixed per-minute bucket would have reset at 60 and let two more through
    assert tracker.would_exceed() == "requests_per_minute"
    clock.t = 110
    assert tracker.would_exceed() is None


def test_a_zero_amount_never_exceeds_a_limit_already_at_its_cap(clock: Clock) -> None:
    tracker = LimitTracker(Limits(cost_usd_per_day=1.0, tokens_per_minute=10), clock)
    tracker.record(cost=1.0, tokens=10)
    assert tracker.would_exceed(requests=1) is None  # no request limit configured; cost and tokens not asked for
    assert tracker.would_exceed(cost=0.01) == "cost_usd_per_day"
    assert tracker.available_in(tokens=11) == math.inf


def test_no_limits_means_nothing_is_tracked(clock: Clock) -> None:
    tracker = LimitTracker(Limits(), clock)
    tracker.record(tokens=10**9, cost=10**6)
    assert not tracker.has_limits
    assert tracker.would_exceed(tokens=10**9) is None
    assert tracker.utilization() == {}
    assert tracker.forecast_exhaustion() == {}
    assert tracker.earliest_exhaustion() is None


def test_forecast_projects_the_recent_rate_to_the_limit(clock: Clock) -> None:
    tracker = LimitTracker(Limits(requests_per_hour=100), clock)
    for i in range(20):  # 20 requests in the first minute: a rate of one every 3 s
        clock.t = i * 3
        tracker.record()
    clock.t = 60
    assert tracker.forecast_exhaustion()["requests_per_hour"] == pytest.approx((100 - 20) / (20 / 60))
    assert tracker.earliest_exhaustion() == ("requests_per_hour", pytest.approx(240))


def test_forecast_is_none_for_a_steady_rate_under_the_limit(clock: Clock) -> None:
    tracker = LimitTracker(Limits(requests_per_minute=10), clock)
    for i in range(13):  # 6 a minute, for two minutes
        clock.t = i * 10
        tracker.record()
    assert tracker.forecast_exhaustion() == {"requests_per_minute": None}


def test_forecast_lets_old_usage_expire(clock: Clock) -> None:
    tracker = LimitTracker(Limits(tokens_per_minute=100), clock)
    tracker.record(tokens=90, requests=0)
    clock.t = 59
    # 90 tokens over 59 s is about 92 a minute: the burst expires in 1 s and the rate alone stays under 100.
    assert tracker.forecast_exhaustion()["tokens_per_minute"] is None
    clock.t = 0
    tracker2 = LimitTracker(Limits(tokens_per_minute=100), clock)
    tracker2.record(tokens=90, requests=0)
    clock.t = 50
    # 1.8 tokens/s reaches the 10 remaining in about 5.6 s, before the burst expires at 60 s.
    assert tracker2.forecast_exhaustion()["tokens_per_minute"] == pytest.approx(10 / 1.8)


def test_forecast_is_zero_when_already_at_the_limit(clock: Clock) -> None:
    tracker = LimitTracker(Limits(requests_per_day=2, tokens_per_day=1000), clock)
    tracker.record(tokens=10)
    tracker.record(tokens=10)
    clock.t = 10
    forecast = tracker.forecast_exhaustion()
    assert forecast["requests_per_day"] == 0.0
    assert forecast["tokens_per_day"] == pytest.approx(980 / 2.0)


def test_past_entries_added_out_of_order_expire_in_time_order(clock: Clock) -> None:
    clock.t = 1000
    window = SlidingWindow(60, clock)
    for at, amount in [(990.0, 1.0), (950.0, 2.0), (999.0, 4.0), (930.0, 8.0), (900.0, 16.0)]:
        window.add_at(at, amount)  # 900 is a full span old: ignored
    assert window.events() == [(950.0, 2.0), (990.0, 1.0), (999.0, 4.0)]
    assert window.total() == 7
    clock.t = 1011  # 950 expires, the later ones stay
    assert window.total() == 5


def test_bulk_load_matches_one_by_one_adds_and_keeps_what_the_window_already_held(clock: Clock) -> None:
    clock.t = 5000
    points = [(5000 - (i * 37) % 3600, float(i % 5 + 1)) for i in range(2000)]
    one_by_one = SlidingWindow(3600, clock)
    for at, amount in sorted(points):
        one_by_one.add_at(at, amount)
    bulk = SlidingWindow(3600, clock)
    bulk.add(3.0)  # something counted live before the restore ran
    bulk.load(points)
    assert bulk.total() == one_by_one.total() + 3.0
    assert [t for t, _ in bulk.events()] == sorted(t for t, _ in bulk.events())
    clock.t += 1800
    assert bulk.total() == sum(a for at, a in points if at > clock.t - 3600) + 3.0


def test_tracker_load_counts_each_past_call_in_every_window(clock: Clock) -> None:
    clock.t = 100_000
    tracker = LimitTracker(Limits(requests_per_minute=10, requests_per_hour=100, tokens_per_day=10_000), clock)
    tracker.load([(30.0, 100, 0.0), (10.0, 50, 0.0), (1800.0, 200, 0.0), (90_000.0, 999, 0.0)])
    assert tracker.usage() == {
        "requests_per_minute": (2.0, 10.0),
        "requests_per_hour": (3.0, 100.0),
        "tokens_per_day": (350.0, 10_000.0),
    }


def test_a_new_tracker_carries_over_the_windows_it_shares_with_the_old_one(clock: Clock) -> None:
    old = LimitTracker(Limits(requests_per_hour=5, tokens_per_day=1000), clock)
    for _ in range(3):
        old.record(tokens=100)
        clock.t += 60
    new = LimitTracker(Limits(requests_per_hour=7, requests_per_minute=2), clock)
    new.carry_over(old)
    assert new.usage() == {"requests_per_minute": (0.0, 2.0), "requests_per_hour": (3.0, 7.0)}
    clock.t = 3600 + 30  # the first call (at 0) leaves the hour window, the one at 60 does not
    assert new.usage()["requests_per_hour"] == (2.0, 7.0)


def test_first_over_sees_every_write_and_every_expiry(clock: Clock) -> None:
    tracker = LimitTracker(Limits(requests_per_minute=3, tokens_per_minute=100), clock)
    assert tracker.first_over(tokens=50) is None  # remembered room: 3 requests, 100 tokens
    for _ in range(3):
        tracker.record(tokens=20)
        clock.t += 10
    assert tracker.first_over(tokens=10) == ("requests_per_minute", 3.0, 3.0)
    assert tracker.first_over(tokens=10, share=2.0) is None
    assert tracker.first_over(tokens=50, share=2.0) is None  # 60 + 50 <= 200
    clock.t = 60.5  # the first call has left the window
    assert tracker.first_over(tokens=61) == ("tokens_per_minute", 40.0, 100.0)
    assert tracker.first_over(tokens=60) is None
    assert tracker.max_utilization() == pytest.approx(2 / 3)
