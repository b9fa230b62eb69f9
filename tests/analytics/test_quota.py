"""Quota utilisation per subscription and window, and the forecast time to exhaustion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import Engine

from analytics import AlertThresholds, QuotaLimit, ReportSettings, ReportWindow, build_report
from analytics.quota import seconds_to_reach
from ledger import AttemptRecord, Ledger
from providers import TokenUsage

UNTIL = datetime(2026, 11, 3, tzinfo=UTC)
WINDOW = ReportWindow(UNTIL - timedelta(days=1), UNTIL)
LIMITS = (
    QuotaLimit("delta", None, "requests_per_hour", "requests", 3600, 10),
    QuotaLimit("delta", "s1", "tokens_per_day", "tokens", 86400, 1000),
    QuotaLimit("delta", None, "cost_usd_per_day", "cost", 86400, 1.0),
)


def _attempt(n: int, started: datetime, subscription: str) -> AttemptRecord:
    return AttemptRecord(
        run_id="r",
        task_id=f"t{n}",
        provider_id="delta",
        task_type="review",
        attempt=1,
        outcome="success",
        started_at=started,
        finished_at=started,
        subscription=subscription,
        usage=TokenUsage(input=60, output=30, cache_read=10),  # limits count cache tokens too: 100 per call
        cost_usd=0.05,
    )


def _fill(engine: Engine, first_seen: datetime) -> None:
    """One old call (when the ledger starts), then 8 calls in the last 10 minutes, alternating s1/s2."""
    rows = [_attempt(0, first_seen, "s1")]
    rows += [_attempt(k + 1, UNTIL - timedelta(minutes=10 - k), "s1" if k % 2 == 0 else "s2") for k in range(8)]
    Ledger(engine).record_attempts(rows)


def _quota(engine: Engine, **thresholds: float) -> dict[str, dict[str, object]]:
    settings = ReportSettings(limits=LIMITS, thresholds=AlertThresholds(**thresholds))
    report = build_report(engine, WINDOW, settings=settings)
    return {row["limit"]: row for row in report.to_json()["quota"]}


def test_utilisation_peak_and_forecast(engine: Engine) -> None:
    _fill(engine, first_seen=UNTIL - timedelta(days=3))
    quota = _quota(engine)
    hourly = quota["requests_per_hour"]
    assert (hourly["used"], hourly["utilisation"]) == (8.0, 0.8)
    assert (hourly["peak_used"], hourly["peak_utilisation"]) == (8.0, 0.8)  # all 8 in the 23:00 hour
    assert hourly["rate_per_hour"] == pytest.approx(8.0)
    # 2 requests left at 8 per hour: 15 minutes, well before the oldest of the 8 ages out (in 50 minutes).
    assert hourly["forecast_exhaustion_h"] == pytest.approx(0.25)
    assert hourly["forecast_exhaustion_at"] == "2026-11-03T00:15:00+00:00"
    tokens = quota["tokens_per_day"]  # only subscription s1: 4 calls of 100 tokens in the window
    assert tokens["subscription"] == "s1"
    assert (tokens["used"], tokens["utilisation"]) == (400.0, 0.4)
    assert tokens["forecast_exhaustion_h"] is None  # 400 a day stays under 1000 once old usage ages out
    cost = quota["cost_usd_per_day"]
    assert cost["used"] == pytest.approx(0.40) and cost["utilisation"] == pytest.approx(0.4)


def test_a_young_ledger_measures_the_rate_over_its_age(engine: Engine) -> None:
    _fill(engine, first_seen=UNTIL - timedelta(minutes=30))
    hourly = _quota(engine)["requests_per_hour"]
    # The old call is now inside the hour too: 9 used over 30 minutes of history = 18 per hour.
    assert hourly["used"] == 9.0
    assert hourly["rate_per_hour"] == pytest.approx(18.0)
    assert hourly["forecast_exhaustion_h"] == pytest.approx(1 / 18)


def test_quota_forecast_alert_and_near_limit_recommendation(engine: Engine) -> None:
    _fill(engine, first_seen=UNTIL - timedelta(days=3))
    settings = ReportSettings(limits=LIMITS, thresholds=AlertThresholds(quota_forecast_hours=1.0))
    report = build_report(engine, WINDOW, settings=settings)
    alerts = [(a.kind, a.subject) for a in report.alerts]
    assert alerts == [("quota_forecast", "delta:requests_per_hour")]
    near = [r for r in report.recommendations if r.kind == "near_limit"]
    assert [r.subject for r in near] == ["delta"]  # 80% of requests_per_hour; s1's tokens (40%) are fine
    assert "requests_per_hour limit: 80% used now, peak 80%" in near[0].message


def test_seconds_to_reach() -> None:
    none = np.array([])
    assert seconds_to_reach(10, 10, 1.0, none, none, 60) == 0.0  # already at the limit
    assert seconds_to_reach(10, 5, 0.0, none, none, 60) is None  # no traffic, never
    # 8 of 10 used, all of it about to age out (10 s left): the window empties before the rate refills it.
    assert seconds_to_reach(10, 8, 8 / 3600, np.array([3590.0]), np.array([8.0]), 3600) is None
    # Same usage but fresh: 2 more at 8 per hour take 900 s.
    assert seconds_to_reach(10, 8, 8 / 3600, np.array([60.0]), np.array([8.0]), 3600) == pytest.approx(900)
    # A steady rate above the limit reaches it once the window has turned over at the latest.
    assert seconds_to_reach(10, 0, 20 / 3600, none, none, 3600) == pytest.approx(1800)


def test_limits_must_be_sensible() -> None:
    with pytest.raises(ValueError, match="measure"):
        QuotaLimit("p", None, "x", "calls", 60, 1)
    with pytest.raises(ValueError, match="positive"):
        QuotaLimit("p", None, "x", "requests", 60, 0)
