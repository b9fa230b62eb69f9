"""Reports show what the response cache saved: tasks served from it, and what their answers cost when they were
made; a cache hit is never recommended as a cheaper provider."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from analytics import ReportWindow, build_report, format_totals
from analytics.recommend import RecommendPolicy
from analytics.report import ReportSettings
from ledger import CACHE_PROVIDER, AttemptRecord, Ledger, NewTask, RunStatus, prune
from providers import Price, TokenUsage

WINDOW = ReportWindow(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC))
AT = datetime(2026, 11, 1, 12, tzinfo=UTC)


def _attempt(task_id: str, provider_id: str, **fields: object) -> AttemptRecord:
    common = {"run_id": "r", "task_type": "review", "outcome": "success", "started_at": AT, "finished_at": AT}
    return AttemptRecord(task_id=task_id, attempt=1, provider_id=provider_id, **common, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_totals_count_cache_hits_and_what_they_saved(database: str, request: pytest.FixtureRequest) -> None:
    engine: Engine = request.getfixturevalue("engine" if database == "sqlite" else "pg_engine")
    paid = {"usage": TokenUsage(input=1000, output=100), "cost_usd": 0.25, "cache_key": "k"}
    hit = {"cache_key": "k", "cache_hit": True, "cache_source": "r:a:1", "cache_saved_usd": 0.25}
    Ledger(engine).record_attempts(
        [
            _attempt("a", "api", **paid),
            *(_attempt(f"hit{i}", CACHE_PROVIDER, **hit) for i in range(3)),
            _attempt("b", "api", usage=TokenUsage(input=1000, output=100), cost_usd=0.25),
        ]
    )
    report = build_report(engine, WINDOW)
    assert report.totals["cache_hits"] == 3
    assert report.totals["cache_savings_usd"] == pytest.approx(0.75)
    assert report.totals["cost_usd"] == pytest.approx(0.5)
    assert report.to_json()["totals"]["cache_savings_usd"] == pytest.approx(0.75)
    rows = {r["provider_id"]: r for r in report.tables["by_provider"].to_dict("records")}
    assert rows[CACHE_PROVIDER]["attempts"] == 3 and rows[CACHE_PROVIDER]["cost_usd"] == 0.0
    assert dict(format_totals(report.totals))["served from the response cache"] == "3 tasks, $0.75 saved"


def test_the_cache_is_never_recommended_as_a_cheaper_provider(engine: Engine) -> None:
    hit = {"cache_key": "k", "cache_hit": True, "cache_source": "r:a:1", "cache_saved_usd": 0.25}
    paid = {"usage": TokenUsage(input=1000, output=100), "cost_usd": 0.25}
    Ledger(engine).record_attempts(
        [
            *(_attempt(f"a{i}", "api", **paid) for i in range(30)),
            *(_attempt(f"hit{i}", CACHE_PROVIDER, **hit) for i in range(30)),
        ]
    )
    settings = ReportSettings(
        prices={"api": Price(input=200.0, output=500.0)},
        policy=RecommendPolicy(min_attempts=5, min_saving_usd=0.0),
    )
    report = build_report(engine, WINDOW, settings=settings)
    assert report.totals["cache_hits"] == 30
    assert not [r for r in report.recommendations if CACHE_PROVIDER in str(r.as_dict())]


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_pruned_period_keeps_its_cache_hits_and_savings(database: str, request: pytest.FixtureRequest) -> None:
    engine: Engine = request.getfixturevalue("engine" if database == "sqlite" else "pg_engine")
    ledger = Ledger(engine)
    run_id, _ = ledger.start_or_resume_run(
        batch_name="b",
        batch_hash="h",
        team=None,
        strategy=None,
        tasks=[NewTask(task_id="a", task_type="review", priority="normal")],
    )
    hit = {"cache_key": "k", "cache_hit": True, "cache_source": "x:a:1", "cache_saved_usd": 0.25}
    ledger.record_attempts(
        [
            _attempt("a", "api", cost_usd=0.25).model_copy(update={"run_id": run_id}),
            *(_attempt(f"hit{i}", CACHE_PROVIDER, **hit).model_copy(update={"run_id": run_id}) for i in range(2)),
        ]
    )
    before = build_report(engine, WINDOW, parallel=False).totals
    ledger.finish_run(run_id, RunStatus.COMPLETED)
    assert prune(engine, datetime.now(UTC) + timedelta(seconds=1)).attempts == 3
    after = build_report(engine, WINDOW, parallel=False).totals
    assert (after["cache_hits"], after["cache_savings_usd"]) == (2, pytest.approx(0.5))
    assert (before["cache_hits"], before["cache_savings_usd"]) == (2, pytest.approx(0.5))
