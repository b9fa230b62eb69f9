"""Alert thresholds (daily cost, error rate, quota forecast) -> alert lines; flows turn them into Prefect events."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from analytics.format import duration, usd

# Prefect event names are "switchboard.alert.<kind>".
DAILY_COST, ERROR_RATE, QUOTA_FORECAST = "daily_cost", "error_rate", "quota_forecast"


@dataclass(frozen=True, slots=True)
class AlertThresholds:
    """Plain copy of the providers file's `alerts:` section (None = that alert is off)."""

    daily_cost_usd: float | None = None
    error_rate: float | None = None
    quota_forecast_hours: float | None = None
    # A provider needs this many attempts that count for it before its own error rate can raise an alert (one
    # failed call of one is 100% but says little); the overall rate always counts.
    min_attempts: int = 10


@dataclass(frozen=True, slots=True)
class Alert:
    kind: str
    subject: str
    value: float
    threshold: float
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "subject": self.subject,
            "value": self.value,
            "threshold": self.threshold,
            "message": self.message,
        }


def check_alerts(
    thresholds: AlertThresholds,
    *,
    by_day: pd.DataFrame,
    performance: pd.DataFrame,
    totals: dict[str, Any],
    quota: pd.DataFrame,
) -> list[Alert]:
    alerts: list[Alert] = []
    if thresholds.daily_cost_usd is not None and not by_day.empty:
        limit = thresholds.daily_cost_usd
        for day, cost in zip(by_day["day"], by_day["cost_usd"], strict=True):
            if cost > limit:
                label = pd.Timestamp(day).strftime("%Y-%m-%d")
                alerts.append(
                    Alert(DAILY_COST, label, float(cost), limit, f"cost on {label} was {usd(cost)}, over {usd(limit)}")
                )
    # Error rates count the provider's failures only: cancelled, bad_request and budget_exceeded attempts are
    # the caller's or the router's own outcomes (analytics.outcomes), as in every success rate of the report.
    judged = totals["attempts"] - totals["not_provider_failures"]
    if thresholds.error_rate is not None and judged and totals["success_rate"] is not None:
        limit = thresholds.error_rate
        overall = 1.0 - totals["success_rate"]
        if overall > limit:
            alerts.append(
                Alert(
                    ERROR_RATE,
                    "all",
                    overall,
                    limit,
                    f"{overall:.1%} of {judged:,} attempts failed at the provider, over {limit:.1%}",
                )
            )
        for row in performance.itertuples(index=False):
            counted = row.attempts - row.not_provider_failures
            if counted < thresholds.min_attempts or pd.isna(row.success_rate):
                continue
            error_rate = 1.0 - row.success_rate
            if error_rate > limit:
                alerts.append(
                    Alert(
                        ERROR_RATE,
                        row.provider_id,
                        error_rate,
                        limit,
                        f"{row.provider_id}: {error_rate:.1%} of {counted:,} attempts failed, over {limit:.1%}",
                    )
                )
    if thresholds.quota_forecast_hours is not None and not quota.empty:
        limit = thresholds.quota_forecast_hours
        for row in quota.itertuples(index=False):
            hours = row.forecast_exhaustion_h
            if not math.isnan(hours) and hours <= limit:
                who = row.provider_id if pd.isna(row.subscription) else f"{row.provider_id}/{row.subscription}"
                alerts.append(
                    Alert(
                        QUOTA_FORECAST,
                        f"{who}:{row.limit}",
                        float(hours),
                        limit,
                        f"{who} {row.limit} runs out in {duration(hours)} at the current rate "
                        f"(alert at {duration(limit)})",
                    )
                )
    return alerts
