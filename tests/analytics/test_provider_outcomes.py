"""One definition of what counts against a provider: cancelled, bad_request and budget_exceeded do not.

Provider `p`, ten single-attempt tasks on 2026-11-01: six successes, two cancelled (the caller stopped them),
one bad_request (the caller's request was wrong) and one timeout (the provider's failure). By hand:
attempt success rate 6 / (10 - 3) = 6/7; task success rate 6/10; one provider error, three attempts shown apart.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from analytics import AlertThresholds, RecommendPolicy, ReportSettings, ReportWindow, build_report
from ledger import AttemptRecord, Ledger
from providers import TokenUsage

WINDOW = ReportWindow(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC))
OUTCOMES = ["success"] * 6 + ["cancelled", "cancelled", "bad_request", "timeout"]


def outcome_mix_attempts() -> list[AttemptRecord]:
    start = datetime(2026, 11, 1, 9, tzinfo=UTC)
    return [
        AttemptRecord(
            run_id="r1",
            task_id=f"t{i}",
            provider_id="p",
            task_type="review",
            attempt=1,
            outcome=outcome,
            started_at=start + timedelta(minutes=i),
            finished_at=start + timedelta(minutes=i),
            usage=TokenUsage(input=100, output=10) if outcome == "success" else TokenUsage(),
            cost_usd=0.001 if outcome == "success" else 0.0,
            latency_ms=50.0,
        )
        for i, outcome in enumerate(OUTCOMES)
    ]


def test_success_rates_alerts_and_recommendations_leave_out_the_callers_own_outcomes(engine: Engine) -> None:
    Ledger(engine).record_attempts(outcome_mix_attempts())
    settings = ReportSettings(
        thresholds=AlertThresholds(error_rate=0.2, min_attempts=5),
        policy=RecommendPolicy(min_attempts=5, drop_below=0.8),
    )
    document = build_report(engine, WINDOW, settings=settings).to_json()
    totals = document["totals"]
    assert totals["attempts"] == 10 and totals["not_provider_failures"] == 3
    assert totals["success_rate"] == totals["attempt_success_rate"] == pytest.approx(6 / 7)
    assert (totals["tasks"], totals["task_success_rate"]) == (10, pytest.approx(0.6))
    (perf,) = document["performance"]
    assert perf["success_rate"] == pytest.approx(6 / 7)
    assert (perf["errors"], perf["not_provider_failures"]) == (1, 3)
    assert document["by_provider"][0]["success_rate"] == pytest.approx(6 / 7)
    errors = {r["outcome"]: r for r in document["errors"]}
    assert {k: r["counts_against_provider"] for k, r in errors.items()} == {
        "cancelled": False,
        "bad_request": False,
        "timeout": True,
    }
    assert errors["cancelled"]["attempts"] == 2
    # 1 provider failure of 7 (14.3%) is under the 20% threshold; counting the caller's 3 it would be 40%.
    assert document["alerts"] == []
    # 6/7 = 85.7% is above drop_below (80%); counting the caller's outcomes it would be 60% and "drop p".
    assert [r["kind"] for r in document["recommendations"]] == []
