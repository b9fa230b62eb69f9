"""Reports show what calls were charged and their list price: a subscription login's calls are charged 0."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine

from analytics import ReportWindow, build_report, format_totals
from ledger import AttemptRecord, Ledger
from providers import TokenUsage

WINDOW = ReportWindow(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC))


def test_totals_and_cost_tables_show_the_charge_and_the_list_price(engine: Engine) -> None:
    at = datetime(2026, 11, 1, 12, tzinfo=UTC)
    common = {"run_id": "r", "task_type": "review", "outcome": "success", "started_at": at, "finished_at": at}
    Ledger(engine).record_attempts(
        [
            AttemptRecord(
                task_id="a",
                attempt=1,
                provider_id="claude",
                subscription="login",
                cost_usd=0.0,
                list_price_usd=0.3,
                usage=TokenUsage(input=100, output=10),
                **common,
            ),
            AttemptRecord(
                task_id="b",
                attempt=1,
                provider_id="api",
                cost_usd=0.2,
                usage=TokenUsage(input=100, output=10),
                **common,
            ),
        ]
    )
    report = build_report(engine, WINDOW)
    assert (report.totals["cost_usd"], report.totals["list_price_usd"]) == (pytest.approx(0.2), pytest.approx(0.5))
    rows = {r["provider_id"]: r for r in report.tables["by_provider"].to_dict("records")}
    assert (rows["claude"]["cost_usd"], rows["claude"]["list_price_usd"]) == (0.0, pytest.approx(0.3))
    assert (rows["api"]["cost_usd"], rows["api"]["list_price_usd"]) == (pytest.approx(0.2), pytest.approx(0.2))
    lines = dict(format_totals(report.totals))
    assert lines["cost"] == "$0.20" and lines["at list price (subscription logins included)"] == "$0.50"
