"""Quota utilisation per subscription and limit window, and the forecast time until each limit runs out.

Limits come in as plain `QuotaLimit`s (the flows build them from the providers file). For each one the report
shows the usage in the window ending at the report's `until` (the sliding window routing enforces), the
busiest calendar window in the period, and when the limit would be reached if usage goes on at the rate the
current window shows. The projection lets old usage age out of the window the way routing's own forecast
does (providers/usage_window.py), so a steady rate below the limit forecasts no exhaustion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd
from sqlalchemy import Connection

from analytics.load import first_seen_since, ledger_start, load_usage_buckets
from analytics.sql import Unit
from analytics.window import ReportWindow
from providers import seconds_to_reach as window_seconds_to_reach

MEASURES = ("requests", "tokens", "cost")
QUOTA_COLUMNS = [
    "provider_id",
    "subscription",
    "limit",
    "window_s",
    "limit_value",
    "used",
    "utilisation",
    "peak_used",
    "peak_utilisation",
    "rate_per_hour",
    "forecast_exhaustion_h",
    "forecast_exhaustion_at",
]


@dataclass(frozen=True, slots=True)
class QuotaLimit:
    """One configured limit: `limit` of `measure` (requests|tokens|cost) per `span_s` seconds.

    `subscription` None means the provider-wide limit (all its subscriptions together).
    """

    provider_id: str
    subscription: str | None
    name: str
    measure: str
    span_s: float
    limit: float

    def __post_init__(self) -> None:
        if self.measure not in MEASURES:
            raise ValueError(f"measure must be one of {MEASURES}, got {self.measure!r}")
        if self.span_s <= 0 or self.limit <= 0:
            raise ValueError("span_s and limit must be positive")


def _detail_unit(span_s: float) -> Unit:
    # Resolution of the current window's usage log: fine enough for the projection, small enough to fetch.
    return "second" if span_s <= 60 else "minute"


def _peak_unit(span_s: float) -> Unit:
    return "minute" if span_s <= 60 else "hour" if span_s <= 3600 else "day"


_UNIT_ORDER: list[Unit] = ["second", "minute", "hour", "day"]
_FLOOR = {"minute": "min", "hour": "h", "day": "D"}


def _select(frame: pd.DataFrame, limit: QuotaLimit) -> pd.DataFrame:
    mask = frame["provider_id"] == limit.provider_id
    if limit.subscription is not None:
        mask &= frame["subscription"] == limit.subscription
    return frame[mask]


def quota_table(conn: Connection, window: ReportWindow, limits: tuple[QuotaLimit, ...]) -> pd.DataFrame:
    if not limits:
        return pd.DataFrame(columns=QUOTA_COLUMNS)
    start = ledger_start(conn)
    providers = sorted({q.provider_id for q in limits})
    # The current windows are short ranges at the end (the started_at index finds them); the busiest-window
    # search reads the whole period once, at the finest unit any limit needs, and rolls up from there.
    details: dict[tuple[Unit, float], pd.DataFrame] = {}
    for q in limits:
        key = (_detail_unit(q.span_s), q.span_s)
        if key not in details:
            begin = window.until - timedelta(seconds=q.span_s)
            details[key] = load_usage_buckets(conn, begin, window.until, key[0], providers)
    finest = min((_peak_unit(q.span_s) for q in limits), key=_UNIT_ORDER.index)
    period = load_usage_buckets(conn, window.since, window.until, finest, providers)
    rows = []
    for q in limits:
        current = _select(details[(_detail_unit(q.span_s), q.span_s)], q).groupby("bucket")[q.measure].sum()
        used = float(current.sum())
        observed = first_seen_since(start, window.until, timedelta(seconds=q.span_s))
        per_second = used / observed
        ages = (window.until - current.index).total_seconds().to_numpy(dtype=float)
        seconds = seconds_to_reach(q.limit, used, per_second, ages, current.to_numpy(dtype=float), q.span_s)
        mine = _select(period, q)
        peak = mine.groupby(mine["bucket"].dt.floor(_FLOOR[_peak_unit(q.span_s)]))[q.measure].sum()
        peak_used = float(peak.max()) if not peak.empty else 0.0
        rows.append(
            [
                q.provider_id,
                q.subscription,
                q.name,
                q.span_s,
                q.limit,
                used,
                used / q.limit,
                peak_used,
                peak_used / q.limit,
                per_second * 3600,
                math.nan if seconds is None else seconds / 3600,
                pd.NaT if seconds is None else pd.Timestamp(window.until) + pd.Timedelta(seconds=seconds),
            ]
        )
    table = pd.DataFrame(rows, columns=QUOTA_COLUMNS)
    table["forecast_exhaustion_at"] = pd.to_datetime(table["forecast_exhaustion_at"], utc=True)
    return table.sort_values(["utilisation", "provider_id"], ascending=[False, True], kind="stable").reset_index(
        drop=True
    )


def seconds_to_reach(
    limit: float, used: float, rate: float, ages_s: np.ndarray, amounts: np.ndarray, span_s: float
) -> float | None:
    """Seconds until the window total reaches `limit` with new usage at `rate`/s and old usage ageing out.

    `ages_s[i]` is how long ago `amounts[i]` was used (bucket start, so it leaves the window a little early,
    which errs toward an earlier forecast). None when the rate never gets there. The projection is the one
    routing uses for its live windows (`providers.usage_window.seconds_to_reach`).
    """
    order = np.argsort(-ages_s, kind="stable")  # oldest first: it expires first
    expiries = [(span_s - float(ages_s[i]), float(amounts[i])) for i in order]
    return window_seconds_to_reach(limit, used, rate, expiries, span_s)
