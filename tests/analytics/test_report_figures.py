"""Every figure of the report on the hand-built sample ledger (tests/analytics/sample_ledger.py)."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from sqlalchemy import Engine

from analytics import AlertThresholds, RecommendPolicy, Report, ReportSettings, ReportWindow, build_report
from tests.analytics import sample_ledger as sample

WINDOW = ReportWindow(sample.SINCE, sample.UNTIL)
CENT = 0.005


def _report(engine: Engine, **kwargs: object) -> Report:
    sample.fill(engine)
    return build_report(engine, WINDOW, **kwargs)  # type: ignore[arg-type]


def _rows(report: Report, table: str, key: str) -> dict[object, dict[str, object]]:
    return {row[key]: row for row in report.to_json()[table]}


def test_totals_cost_to_the_cent_and_rates(engine: Engine) -> None:
    totals = _report(engine).to_json()["totals"]
    # 10.50 + 21.00 + 2.00 + 5.00 + 1.25 + 24.00 + 1.80; the two $1000 rows lie outside [since, until).
    assert totals["cost_usd"] == pytest.approx(65.55, abs=CENT)
    assert totals["attempts"] == 10
    assert totals["successes"] == 7
    assert totals["success_rate"] == totals["attempt_success_rate"] == pytest.approx(0.7)
    assert totals["not_provider_failures"] == 0
    # 10 attempts, 3 of them moves within the period (t3: 2, r2/t2: 1): 7 tasks, every one succeeded in the end.
    assert totals["tasks"] == 7
    assert totals["task_success_rate"] == 1.0
    assert totals["tokens_input"] == 12_100_000
    assert totals["tokens_output"] == 6_100_000
    assert (totals["failovers"], totals["retries"]) == (2, 1)


def test_cost_by_provider_team_task_type_model_and_subscription(engine: Engine) -> None:
    report = _report(engine)
    by_provider = _rows(report, "by_provider", "provider_id")
    assert by_provider["alpha"]["cost_usd"] == pytest.approx(57.30, abs=CENT)
    assert by_provider["beta"]["cost_usd"] == pytest.approx(8.25, abs=CENT)
    assert by_provider["gamma"]["cost_usd"] == 0.0
    assert [r["provider_id"] for r in report.to_json()["by_provider"]] == ["alpha", "beta", "gamma"]  # costliest first
    assert (by_provider["alpha"]["attempts"], by_provider["alpha"]["successes"]) == (4, 4)
    assert (by_provider["beta"]["attempts"], by_provider["beta"]["successes"]) == (4, 3)
    assert by_provider["beta"]["success_rate"] == pytest.approx(0.75)
    assert by_provider["gamma"]["success_rate"] == 0.0
    assert by_provider["alpha"]["tokens_input"] == 6_100_000 and by_provider["alpha"]["tokens_output"] == 2_600_000
    assert by_provider["alpha"]["cost_share"] == pytest.approx(57.30 / 65.55)
    teams = _rows(report, "by_team", "team")
    assert teams["platform"]["cost_usd"] == pytest.approx(38.50, abs=CENT) and teams["platform"]["attempts"] == 6
    assert teams["search"]["cost_usd"] == pytest.approx(27.05, abs=CENT) and teams["search"]["attempts"] == 4
    types = _rows(report, "by_task_type", "task_type")
    assert types["review"]["cost_usd"] == pytest.approx(58.75, abs=CENT) and types["review"]["successes"] == 5
    assert types["summary"]["cost_usd"] == pytest.approx(6.80, abs=CENT) and types["summary"]["attempts"] == 2
    models = {(r["provider_id"], r["model"]): r for r in report.to_json()["by_model"]}
    assert models[("alpha", "a-large")]["cost_usd"] == pytest.approx(57.30, abs=CENT)
    subs = report.to_json()["by_subscription"]
    assert {r["subscription"] for r in subs} == {None}
    assert sum(r["cost_usd"] for r in subs) == pytest.approx(65.55, abs=CENT)


def test_day_boundaries_are_utc(engine: Engine) -> None:
    """23:59:59 belongs to Nov 1, 00:00:00 to Nov 2; the row at `until` and the one before `since` to neither."""
    report = _report(engine)
    days = _rows(report, "by_day", "day")
    assert list(days) == ["2026-11-01", "2026-11-02"]
    assert days["2026-11-01"]["cost_usd"] == pytest.approx(38.50, abs=CENT)  # includes t4's $5.00 at 23:59:59
    assert days["2026-11-02"]["cost_usd"] == pytest.approx(27.05, abs=CENT)  # includes r2/t1's $1.25 at 00:00:00
    assert (days["2026-11-01"]["attempts"], days["2026-11-02"]["attempts"]) == (6, 4)
    day_frame = report.tables["by_day"]["day"]
    assert str(day_frame.dt.tz) == "UTC"
    over_time = {(r["day"], r["provider_id"]): r["cost_usd"] for r in report.to_json()["cost_over_time"]}
    assert over_time[("2026-11-01", "beta")] == pytest.approx(7.00, abs=CENT)
    assert over_time[("2026-11-02", "alpha")] == pytest.approx(25.80, abs=CENT)


def test_performance_latency_percentiles_errors_failovers_and_retries(engine: Engine) -> None:
    report = _report(engine)
    perf = _rows(report, "performance", "provider_id")
    # alpha's successful latencies 100, 200, 700, 800 ms; numpy's linear interpolation between ranks.
    assert perf["alpha"]["p50_ms"] == pytest.approx(450.0)
    assert perf["alpha"]["p95_ms"] == pytest.approx(785.0)
    assert perf["alpha"]["p99_ms"] == pytest.approx(797.0)
    assert (perf["beta"]["p50_ms"], perf["beta"]["p95_ms"], perf["beta"]["p99_ms"]) == pytest.approx((500, 590, 598))
    assert perf["gamma"]["p50_ms"] is None  # no successful attempt: no latency, and null rather than NaN
    assert perf["gamma"]["success_rate"] == 0.0 and perf["gamma"]["errors"] == 2
    # gamma: timeout -> retry on gamma, unavailable -> failover to beta; beta: rate_limited -> failover to alpha.
    assert (perf["gamma"]["retries"], perf["gamma"]["failovers"]) == (1, 1)
    assert perf["gamma"]["failover_time_s"] == pytest.approx(0.050)
    assert (perf["beta"]["retries"], perf["beta"]["failovers"]) == (0, 1)
    assert perf["beta"]["failover_time_s"] == pytest.approx(0.010)
    assert (perf["alpha"]["retries"], perf["alpha"]["failovers"]) == (0, 0)
    errors = {(r["provider_id"], r["outcome"]): r for r in report.to_json()["errors"]}
    assert set(errors) == {("gamma", "timeout"), ("gamma", "unavailable"), ("beta", "rate_limited")}
    assert errors[("gamma", "timeout")]["share_of_attempts"] == pytest.approx(0.5)
    assert errors[("gamma", "timeout")]["share_of_errors"] == pytest.approx(0.5)
    assert errors[("beta", "rate_limited")]["share_of_attempts"] == pytest.approx(0.25)


def test_circuit_time_and_health_trend(engine: Engine) -> None:
    report = _report(engine)
    perf = _rows(report, "performance", "provider_id")
    # Open time runs from an open to the provider's next circuit event, at most the cooldown (30 s by default):
    # gamma open 03:00:05 -> half-open 03:00:35: 30 s; beta opened at 23:00 the day before, so its spell ended
    # (23:00:30) before the window; alpha opened at 23:00 with nothing after it: the cooldown, 30 s.
    assert (perf["gamma"]["circuit_opens"], perf["gamma"]["circuit_open_s"]) == (1, 30.0)
    assert (perf["beta"]["circuit_opens"], perf["beta"]["circuit_open_s"]) == (0, 0.0)
    assert (perf["alpha"]["circuit_opens"], perf["alpha"]["circuit_open_s"]) == (1, 30.0)
    health = {(r["day"], r["provider_id"]): r for r in report.to_json()["health"]}
    assert health[("2026-11-01", "gamma")]["circuit_opened"] == 1
    assert health[("2026-11-01", "gamma")]["circuit_half_open"] == 1
    assert health[("2026-11-01", "gamma")]["circuit_closed"] == 1
    assert health[("2026-11-01", "beta")]["circuit_closed"] == 1
    assert health[("2026-11-02", "beta")]["quota_blocked"] == 1
    assert health[("2026-11-02", "alpha")]["circuit_opened"] == 1
    assert len(health) == 4


def test_a_longer_cooldown_keeps_circuits_open_longer(engine: Engine) -> None:
    report = _report(engine, settings=ReportSettings(circuit_cooldown_s=3600))
    perf = _rows(report, "performance", "provider_id")
    # gamma's half-open event still ends its spell at 30 s; beta's open (10-31 23:00) now lasts to 00:00 = since;
    # alpha's (11-02 23:00) to 00:00 = until: the whole cooldown.
    assert perf["gamma"]["circuit_open_s"] == 30.0
    assert perf["beta"]["circuit_open_s"] == 0.0
    assert perf["alpha"]["circuit_open_s"] == 3600.0


def test_routing_efficiency_per_strategy(engine: Engine) -> None:
    routing = _rows(_report(engine), "routing", "strategy")
    assert routing["priority_based"]["decisions"] == 4
    assert routing["priority_based"]["first_choice_successes"] == 3
    assert routing["priority_based"]["first_choice_rate"] == pytest.approx(0.75)
    assert (routing["priority_based"]["failovers"], routing["priority_based"]["retries"]) == (1, 1)
    assert routing["priority_based"]["failover_time_s"] == pytest.approx(0.05)
    assert routing["priority_based"]["retry_time_s"] == pytest.approx(0.3)
    assert routing["cost_based"]["decisions"] == 3
    assert routing["cost_based"]["first_choice_rate"] == pytest.approx(2 / 3)
    assert routing["cost_based"]["failover_time_s"] == pytest.approx(0.01)


def test_team_filter(engine: Engine) -> None:
    report = _report(engine, team="search")
    totals = report.to_json()["totals"]
    assert totals["cost_usd"] == pytest.approx(27.05, abs=CENT)
    assert totals["attempts"] == 4
    assert {r["team"] for r in report.to_json()["by_team"]} == {"search"}
    assert report.to_json()["period"]["team"] == "search"


def test_recommendations_state_their_saving(engine: Engine) -> None:
    policy = RecommendPolicy(min_attempts=1)
    report = _report(engine, settings=ReportSettings(prices=sample.PRICES, limits=sample.LIMITS, policy=policy))
    recs = {(r["kind"], r["subject"]): r for r in report.to_json()["recommendations"]}
    cheaper = [r for r in recs.values() if r["kind"] == "cheaper_provider"]
    assert len(cheaper) == 1
    # summary on alpha (0.1M in, 0.1M out) at beta's prices: 0.1 * (3 - 0.5) + 0.1 * (15 - 1.5) = 0.25 + 1.35.
    assert cheaper[0]["subject"] == "summary: alpha -> beta"
    assert cheaper[0]["saving_usd"] == pytest.approx(1.60, abs=CENT)
    assert cheaper[0]["details"]["current_cost_usd"] == pytest.approx(1.80)
    assert "$1.60" in cheaper[0]["message"]
    assert ("drop_provider", "gamma") in recs  # 0 of 2 succeeded
    assert ("add_capacity", "beta") in recs  # its only failure was rate_limited (1 of 4 attempts)
    assert ("near_limit", "beta") in recs  # 6M tokens in the 23:00 hour of Nov 1 against 2M per hour
    assert not any(r["subject"] == "alpha" for r in recs.values() if r["kind"] != "cheaper_provider")


def test_the_success_tolerance_decides_what_counts_as_equal(engine: Engine) -> None:
    """review on alpha (3/3) -> beta (2/3) is cheaper; at 2 points of tolerance it is not recommended (see
    above), at 35 points 66.7% counts as equal to 100% and it is."""
    policy = RecommendPolicy(min_attempts=1, success_tolerance=0.35)
    report = _report(engine, settings=ReportSettings(prices=sample.PRICES, policy=policy))
    subjects = {r.subject for r in report.recommendations if r.kind == "cheaper_provider"}
    assert "review: alpha -> beta" in subjects
    saving = next(r.saving_usd for r in report.recommendations if r.subject == "review: alpha -> beta")
    # alpha's review tokens: 6.0M in, 2.5M out -> 6 * 2.5 + 2.5 * 13.5 = 48.75
    assert saving == pytest.approx(48.75, abs=CENT)


def test_alerts(engine: Engine) -> None:
    thresholds = AlertThresholds(daily_cost_usd=30.0, error_rate=0.2, min_attempts=2)
    report = _report(engine, settings=ReportSettings(thresholds=thresholds))
    alerts = {(a.kind, a.subject): a for a in report.alerts}
    assert set(alerts) == {
        ("daily_cost", "2026-11-01"),  # $38.50 > $30; Nov 2's $27.05 is not
        ("error_rate", "all"),  # 3 of 10 failed
        ("error_rate", "gamma"),
        ("error_rate", "beta"),  # 1 of 4 = 25% > 20%
    }
    assert alerts[("daily_cost", "2026-11-01")].value == pytest.approx(38.50)
    assert alerts[("daily_cost", "2026-11-01")].message == "cost on 2026-11-01 was $38.50, over $30.00"
    assert alerts[("error_rate", "all")].value == pytest.approx(0.3)
    assert [a["kind"] for a in report.to_json()["alerts"]].count("error_rate") == 3


def test_json_is_strict_and_complete(engine: Engine) -> None:
    document = _report(engine, settings=ReportSettings(limits=sample.LIMITS)).to_json()
    text = json.dumps(document, allow_nan=False)  # raises on NaN or inf anywhere
    assert json.loads(text)["totals"]["attempts"] == 10
    for table in ("by_provider", "by_team", "by_task_type", "by_day", "performance", "quota", "routing", "health"):
        assert isinstance(document[table], list) and document[table], table
    assert document["period"] == {
        "since": "2026-11-01T00:00:00+00:00",
        "until": "2026-11-03T00:00:00+00:00",
        "team": None,
    }


def test_sequential_and_parallel_loading_agree(engine: Engine) -> None:
    sample.fill(engine)
    settings = ReportSettings(limits=sample.LIMITS, prices=sample.PRICES)
    one = build_report(engine, WINDOW, settings=settings, parallel=False).to_json()
    two = build_report(engine, WINDOW, settings=settings, parallel=True).to_json()
    assert one == two


def test_postgresql_gives_the_same_figures(engine: Engine, pg_engine: Engine) -> None:
    settings = ReportSettings(limits=sample.LIMITS, prices=sample.PRICES, policy=RecommendPolicy(min_attempts=1))
    sample.fill(engine)
    sample.fill(pg_engine)
    lite = build_report(engine, WINDOW, settings=settings).to_json()
    pg = build_report(pg_engine, WINDOW, settings=settings).to_json()
    for name in lite:
        assert _rounded(pg[name]) == _rounded(lite[name]), name


def _rounded(value: object) -> object:
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 6)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def test_frames_are_typed(engine: Engine) -> None:
    report = _report(engine)
    by_provider = report.tables["by_provider"]
    assert by_provider["attempts"].dtype == "int64"
    assert by_provider["cost_usd"].dtype == "float64"
    assert isinstance(report.tables["health"]["day"].dtype, pd.DatetimeTZDtype)


def test_a_move_between_one_providers_subscriptions_is_a_rotation_not_a_retry_or_failover(engine: Engine) -> None:
    from ledger import AttemptRecord, Ledger, NewTask
    from providers import TokenUsage

    ledger = Ledger(engine)
    run_id, _ = ledger.start_or_resume_run(
        batch_name="subs", batch_hash="subs", team="platform", strategy="priority_based",
        tasks=[NewTask(task_id="t", task_type="review", priority="normal", team="platform")],
    )  # fmt: skip
    moves = [("claude", "a", "quota_exhausted"), ("claude", "b", "overloaded"), ("claude", "b", "unavailable")]
    moves += [("mock", None, "success")]
    ledger.record_attempts(
        [
            AttemptRecord(run_id=run_id, task_id="t", provider_id=provider, subscription=sub, task_type="review",
                          attempt=i, outcome=outcome, started_at=sample.at(1, 1, i), finished_at=sample.at(1, 1, i),
                          team="platform", strategy="priority_based", usage=TokenUsage(), latency_ms=10.0)
            for i, (provider, sub, outcome) in enumerate(moves, start=1)
        ]
    )  # fmt: skip
    report = build_report(engine, WINDOW)
    totals = report.to_json()["totals"]
    # a -> b: a rotation; b -> b: a retry; claude -> mock: a failover.
    assert (totals["rotations"], totals["retries"], totals["failovers"]) == (1, 1, 1)
    claude = _rows(report, "performance", "provider_id")["claude"]
    assert (claude["rotations"], claude["retries"], claude["failovers"]) == (1, 1, 1)
