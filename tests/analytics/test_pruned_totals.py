"""A report over a pruned period (`switchboard db prune`) shows the same cost, tokens, attempts and outcomes as
before the prune, from the kept totals; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from sqlalchemy import Engine, func, select

from analytics import ReportWindow, build_report
from ledger import Ledger, ProviderUsage, RunStatus, UsageTotal, prune
from tests.analytics.sample_ledger import SINCE, UNTIL, fill

COMPARED = ("by_provider", "by_subscription", "by_model", "by_task_type", "by_team", "by_day")


def _finish_every_run(engine: Engine) -> datetime:
    """Mark the sample's runs finished (now) and return a cutoff just after: prune takes them all."""
    ledger = Ledger(engine)
    for run in ledger.list_runs(100):
        ledger.finish_run(run.run_id, RunStatus.COMPLETED)
    return datetime.now(UTC) + timedelta(seconds=1)


def _tables(engine: Engine, window: ReportWindow) -> tuple[dict[str, pd.DataFrame], dict[str, object]]:
    report = build_report(engine, window, parallel=False)
    tables = {name: report.tables[name].reset_index(drop=True) for name in COMPARED if name in report.tables}
    kept = ("cost_usd", "attempts", "attempt_success_rate", "tasks", "task_success_rate", "tokens_input")
    totals = {k: report.totals[k] for k in kept}
    return tables, totals


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_engine(request: pytest.FixtureRequest) -> Engine:
    return request.getfixturevalue("engine" if request.param == "sqlite" else "pg_engine")


def test_the_report_of_a_pruned_period_is_unchanged(ledger_engine: Engine) -> None:
    fill(ledger_engine)
    cutoff = _finish_every_run(ledger_engine)
    window = ReportWindow(SINCE, UNTIL)
    before_tables, before_totals = _tables(ledger_engine, window)
    assert before_totals["attempts"] == 10 and set(COMPARED) <= set(before_tables)
    result = prune(ledger_engine, cutoff)
    assert (result.runs, result.attempts) == (4, 12)  # r1, r2 and the two runs outside the window
    with ledger_engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(ProviderUsage)) == 0
        assert conn.scalar(select(func.sum(UsageTotal.attempts))) == 12
    after_tables, after_totals = _tables(ledger_engine, window)
    assert after_totals == pytest.approx(before_totals)
    for name in COMPARED:
        pd.testing.assert_frame_equal(after_tables[name], before_tables[name], check_dtype=False, check_like=True)


def test_a_window_counts_only_the_pruned_days_that_start_inside_it(engine: Engine) -> None:
    fill(engine)
    prune(engine, _finish_every_run(engine))
    nov_2 = build_report(engine, ReportWindow(datetime(2026, 11, 2, tzinfo=UTC), UNTIL), parallel=False)
    assert nov_2.totals["attempts"] == 4 and nov_2.totals["cost_usd"] == pytest.approx(1.25 + 24.0 + 1.8)
    half_day = build_report(engine, ReportWindow(datetime(2026, 11, 1, 12, tzinfo=UTC), UNTIL), parallel=False)
    assert half_day.totals["attempts"] == 4  # Nov 1 started before the window: its totals are not in it
