"""Figures for people: small money keeps significant digits, short forecasts read in minutes."""

from __future__ import annotations

import pandas as pd
import pytest

from analytics import AlertThresholds, check_alerts
from analytics.format import duration, format_totals, format_value, usd


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "$0.00"),
        (0.0029, "$0.0029"),
        (0.002933, "$0.00293"),
        (1.872e-05, "$0.0000187"),
        (0.001, "$0.001"),
        (0.5, "$0.50"),
        (0.0123, "$0.0123"),
        (38.5, "$38.50"),
        (1234.5, "$1,234.50"),
        (-0.0029, "$-0.0029"),
    ],
)
def test_money_keeps_three_significant_digits_below_a_dollar(value: float, text: str) -> None:
    assert usd(value) == text


@pytest.mark.parametrize(
    ("hours", "text"),
    [(0.02, "1.2 min"), (0.25, "15 min"), (0.005, "18 s"), (2.5, "2.5 h"), (1.0, "1.0 h"), (30.0, "30.0 h")],
)
def test_durations_use_the_unit_that_shows_the_value(hours: float, text: str) -> None:
    assert duration(hours) == text


def test_table_cells() -> None:
    assert format_value("cost_usd", 0.0029) == "0.0029"
    assert format_value("forecast_exhaustion_h", 0.02) == "1.2 min"
    assert format_value("cost_share", 0.641) == "64.1%"  # a share, not money
    assert format_value("circuit_open_s", 54.4) == "54.4"


def test_headline_shows_small_costs_and_both_success_rates() -> None:
    totals = {
        "cost_usd": 0.0029,
        "attempts": 4,
        "attempt_success_rate": 0.75,
        "tasks": 3,
        "task_success_rate": None,
        "tokens_input": 10,
        "tokens_output": 5,
        "failovers": 1,
        "retries": 0,
    }
    shown = dict(format_totals(totals))
    assert shown["cost"] == "$0.0029"
    assert shown["attempt success rate"] == "75.0%"
    assert shown["task success rate"] == "n/a"


def test_alert_lines_show_small_amounts_and_minutes() -> None:
    by_day = pd.DataFrame({"day": [pd.Timestamp("2026-11-30", tz="UTC")], "cost_usd": [0.0029]})
    quota = pd.DataFrame(
        [["p", None, "requests_per_hour", 0.02]],
        columns=["provider_id", "subscription", "limit", "forecast_exhaustion_h"],
    )
    totals = {"attempts": 0, "not_provider_failures": 0, "success_rate": None}
    alerts = check_alerts(
        AlertThresholds(daily_cost_usd=0.001, quota_forecast_hours=0.5),
        by_day=by_day,
        performance=pd.DataFrame(),
        totals=totals,
        quota=quota,
    )
    assert [a.message for a in alerts] == [
        "cost on 2026-11-30 was $0.0029, over $0.001",
        "p requests_per_hour runs out in 1.2 min at the current rate (alert at 30 min)",
    ]
