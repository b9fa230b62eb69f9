"""When the routing engine reports `quota.forecast_crossed` and `budget.exhausted`, the events Switchboard
forwards to Prefect for automations (flows/events.py): before a limit is hit, once per crossing or budget,
with the figures an automation needs. Time comes from an injected clock; no Prefect here."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from providers import AITask, Limits
from routing import BUDGET_EXHAUSTED, QUOTA_FORECAST_CROSSED, ProviderQuota, RoutingEvent, RunInfo
from tests.routing.engine_kit import FakeClock, engine, tasks


def _quota(clock: FakeClock, events: list[RoutingEvent], limits: Limits, **settings: Any) -> ProviderQuota:
    return ProviderQuota("p", limits, clock=clock, observer=events.append, **settings)


def _crossings(events: list[RoutingEvent]) -> list[dict[str, Any]]:
    return [e.detail for e in events if e.kind == QUOTA_FORECAST_CROSSED]


def _calls_at_once(quota: ProviderQuota, n: int) -> None:
    """`n` calls sent together: each request is counted as it goes out, none has settled yet."""
    for _ in range(n):
        quota.begin()


# --- quota.forecast_crossed -------------------------------------------------------------------------


def test_crossing_the_threshold_is_reported_when_the_request_goes_out_before_the_limit() -> None:
    """It was checked only when calls settled: concurrent calls took usage past the limit (pressure 1.25)
    before anything was reported."""
    clock, events = FakeClock(), []
    quota = _quota(clock, events, Limits(requests_per_minute=10), switch_threshold=0.8, reserve_for_critical=0.0)
    _calls_at_once(quota, 7)
    assert _crossings(events) == []
    _calls_at_once(quota, 1)  # 8 of 10 requests in flight: the threshold, two before the limit
    [crossed] = _crossings(events)
    assert crossed["trigger"] == "threshold" and crossed["pressure"] == pytest.approx(0.8) and crossed["pressure"] < 1
    _calls_at_once(quota, 2)
    for _ in range(10):
        quota.settle(0, 0.0)
    assert len(_crossings(events)) == 1  # once per crossing, however many calls follow


def test_a_crossing_is_reported_again_only_after_the_window_reset() -> None:
    clock, events = FakeClock(), []
    quota = _quota(clock, events, Limits(requests_per_minute=10), switch_threshold=0.8, reserve_for_critical=0.0)
    _calls_at_once(quota, 8)
    clock.now += 30
    _calls_at_once(quota, 1)  # still inside the same window: the same crossing
    assert len(_crossings(events)) == 1
    clock.now += 61  # the window slides past every call: usage back to nothing
    _calls_at_once(quota, 1)  # re-armed here
    assert len(_crossings(events)) == 1
    _calls_at_once(quota, 7)  # 8 of 10 again: a new crossing
    assert len(_crossings(events)) == 2


def test_usage_wobbling_around_the_threshold_as_the_window_slides_reports_once() -> None:
    clock, events = FakeClock(), []
    quota = _quota(clock, events, Limits(requests_per_minute=10), switch_threshold=0.8, reserve_for_critical=0.0)
    for n in range(120):  # a call every 6 or 10 s, each taking 2 s: the window holds 7 or 8 of 10 in turn
        quota.begin()
        clock.now += 2.0
        quota.settle(0, 0.0)
        clock.now += 4.0 if n % 2 == 0 else 8.0
    assert len(_crossings(events)) == 1  # was 57: one per dip under the threshold and back


def test_a_call_refused_for_the_reserve_is_reported_before_the_limit() -> None:
    """With the default reserve (0.1) and threshold (0.9), non-critical work stops at 7 of 8 requests a minute:
    usage never reached the threshold, so nothing was reported while the provider refused work."""
    clock, events = FakeClock(), []
    quota = _quota(clock, events, Limits(requests_per_minute=8), switch_threshold=0.9, reserve_for_critical=0.1)
    _calls_at_once(quota, 7)
    assert _crossings(events) == []
    reason = quota.refusal(0, 0.0, critical=False)
    assert reason is not None and "reserve kept for critical" in reason
    [crossed] = _crossings(events)
    assert crossed["trigger"] == "limit_share" and crossed["pressure"] == pytest.approx(7 / 8)
    assert crossed["refused"] == reason
    for _ in range(20):  # every later decision is refused too: still one event
        assert quota.refusal(0, 0.0, critical=False) is not None
    assert len(_crossings(events)) == 1


def test_a_forecast_inside_the_horizon_is_reported_long_before_the_threshold() -> None:
    clock, events = FakeClock(), []
    hour = 3600.0
    quota = _quota(clock, events, Limits(requests_per_hour=1000), switch_threshold=0.9, forecast_horizon_s=0.25 * hour)
    for _ in range(5):  # one request every 2 s: 1,000 reached in half an hour, outside a 15-minute horizon
        quota.begin()
        clock.now += 2.0
    assert _crossings(events) == []
    for _ in range(3):  # then 10 a second: at that pace the hour's 1,000 go in a few minutes
        _calls_at_once(quota, 10)
        clock.now += 1.0
    [crossed] = _crossings(events)
    assert crossed["trigger"] == "forecast" and crossed["limit"] == "requests_per_hour"
    assert crossed["exhausted_in_s"] <= 0.25 * hour and crossed["horizon_s"] == 0.25 * hour
    assert crossed["pressure"] < 0.02  # long before the threshold


def test_without_a_horizon_only_usage_counts() -> None:
    clock, events = FakeClock(), []
    quota = _quota(clock, events, Limits(requests_per_hour=1000), switch_threshold=0.9)
    for _ in range(10):
        _calls_at_once(quota, 5)
        clock.now += 1.0
    assert _crossings(events) == []


def test_a_restart_above_the_threshold_does_not_report_it_again() -> None:
    """The audit's case: usage restored from the ledger was already past the limit, and the first settled call
    reported a 'forecast' at pressure 1.25. The run that crossed the threshold reported it."""
    clock, events = FakeClock(), []
    quota = _quota(clock, events, Limits(requests_per_minute=8), switch_threshold=0.9, reserve_for_critical=0.1)
    quota.restore_usage([(float(age), 0.0, 0.0, None) for age in range(10)])  # 10 calls in the last 10 s
    assert quota.pressure() == pytest.approx(1.25)
    assert quota.refusal(0, 0.0, critical=False) is not None
    quota.settle(0, 0.0)
    assert _crossings(events) == []


def test_restored_usage_does_not_inflate_the_forecast() -> None:
    """Windows restored from the ledger hold a day of calls the tracker did not watch arrive; taken as the rate
    of its first second, 50 calls of the last hour would forecast the hourly limit gone within a minute."""
    clock, events = FakeClock(), []
    quota = _quota(clock, events, Limits(requests_per_hour=100), switch_threshold=0.9, forecast_horizon_s=6 * 3600.0)
    quota.restore_usage([(age * 70.0, 0.0, 0.0, None) for age in range(50)])  # 50 calls over the last hour
    quota.begin()
    quota.settle(0, 0.0)
    clock.now += 5
    quota.begin()
    assert _crossings(events) == []


def test_the_providers_file_sets_the_forecast_horizon() -> None:
    router = engine({"p": {"limits": {"requests_per_hour": 10}}}, alerts={"quota_forecast_hours": 6})
    assert router.state("p").quota.forecast_horizon_s == 6 * 3600
    assert engine({"p": {}}).state("p").quota.forecast_horizon_s is None


# --- budget.exhausted -----------------------------------------------------------------------------------


def _budget_events(events: list[RoutingEvent]) -> list[dict[str, Any]]:
    return [e.detail for e in events if e.kind == BUDGET_EXHAUSTED]


async def test_an_exhausted_run_budget_is_reported_once_per_run_with_its_figures() -> None:
    """It was reported once per refused task: 40 events for a 40-task run, without the money figures."""
    events: list[RoutingEvent] = []
    router = engine(
        {"pricey": {"prices": {"*": {"input": 1000.0, "output": 1000.0}}}},
        events=events,
        budget={"max_cost_usd_per_run": 0.5},
    )
    results = [await router.route(t, RunInfo(run_id="r1")) for t in tasks(40)]
    assert {r.outcome for r in results} == {"budget_exceeded"}
    [first] = _budget_events(events)
    assert first == {"scope": "run", "run_id": "r1", "spent_usd": 0.0, "limit_usd": 0.5, "task_id": "t0"}
    await router.route(AITask(id="other", type="code_review", prompt="p"), RunInfo(run_id="r2"))
    assert [e["run_id"] for e in _budget_events(events)] == ["r1", "r2"]  # another run's budget, another event


async def test_a_budget_that_lets_work_through_is_not_reported() -> None:
    events: list[RoutingEvent] = []
    router = engine({"cheap": {}}, events=events, budget={"max_cost_usd_per_run": 100.0})
    await router.route(tasks(1)[0], RunInfo(run_id="r1"))
    assert _budget_events(events) == []


async def test_an_exhausted_day_budget_is_reported_once_a_day_across_runs() -> None:
    events: list[RoutingEvent] = []
    router = engine(
        {"m": {"prices": {"*": {"input": 10.0, "output": 10.0}}}},  # ~$0.01 a task (1,024 output tokens)
        events=events,
        budget={"max_cost_usd_per_day": 0.01},
    )
    router.budget.seed(day_spent=0.008)  # spent earlier today (the ledger says so at a run's start)
    for run_id in ("r1", "r2", "r3"):
        for task in tasks(5, prefix=run_id):
            result = await router.route(task, RunInfo(run_id=run_id))
            assert result.outcome == "budget_exceeded"
    [day] = _budget_events(events)
    assert day["scope"] == "day" and day["day"] == datetime.now(UTC).date().isoformat()
    assert day["spent_usd"] == pytest.approx(0.008) and day["limit_usd"] == 0.01 and day["run_id"] == "r1"
    router.budget_reported("day", "2000-01-01")  # an earlier day's report does not silence today's
    assert len(_budget_events(events)) == 1
