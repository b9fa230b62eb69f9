"""The whole usage report: load from the ledger, build every table, recommendations and alerts, serialise."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine

from analytics.alerts import Alert, AlertThresholds, check_alerts
from analytics.health import DEFAULT_COOLDOWN_S, circuit_summary, health_trend
from analytics.load import (
    ReportFilter,
    load_cache_savings,
    load_cube,
    load_events,
    load_latency_percentiles,
    load_quota_failures,
    load_transitions,
)
from analytics.quota import QuotaLimit, quota_table
from analytics.recommend import (
    Recommendation,
    RecommendPolicy,
    cheaper_providers,
    near_limits,
    provider_changes,
)
from analytics.sql import check_dialect
from analytics.tables import (
    COST_DIMENSIONS,
    cost_over_time,
    cost_table,
    error_mix,
    performance,
    routing_efficiency,
    totals,
    with_successes,
    with_team_savings,
)
from analytics.window import ReportWindow
from ledger import CACHE_PROVIDER
from providers import Price

_T = TypeVar("_T")
# Table name -> one-line meaning; the order is the report's order (JSON, CSV files, HTML sections).
TABLES: dict[str, str] = {
    "by_provider": "Cost, tokens and attempts per provider",
    "by_subscription": "Cost, tokens and attempts per provider subscription",
    "by_model": "Cost, tokens and attempts per provider model",
    "by_task_type": "Cost, tokens and attempts per task type",
    "by_team": "Cost, tokens and attempts per team, and what subscriptions and the response cache saved it",
    "by_day": "Cost, tokens and attempts per UTC day",
    "cost_over_time": "Cost per UTC day and provider",
    "performance": "Success rate, latency percentiles (successful attempts), failovers, retries, circuit time",
    "errors": "Failed attempts per provider and outcome (and whether it counts against the provider)",
    "quota": "Use of each configured limit: now, at its busiest, and forecast exhaustion",
    "routing": "Routing decisions per strategy: first-choice successes and time lost to failover and retries",
    "health": "Circuit opens and recoveries, and quota events, per UTC day and provider",
}


@dataclass(frozen=True)
class ReportSettings:
    """Everything from the providers file a report needs, as plain values (analytics never reads config)."""

    limits: tuple[QuotaLimit, ...] = ()
    prices: Mapping[str, Price] = field(default_factory=dict)
    thresholds: AlertThresholds = field(default_factory=AlertThresholds)
    policy: RecommendPolicy = field(default_factory=RecommendPolicy)
    # The providers file's `circuit.cooldown_s`: the longest an open circuit keeps a provider out.
    circuit_cooldown_s: float = DEFAULT_COOLDOWN_S


@dataclass
class Report:
    window: ReportWindow
    team: str | None
    totals: dict[str, Any]
    tables: dict[str, pd.DataFrame]
    recommendations: list[Recommendation]
    alerts: list[Alert]
    settings: ReportSettings

    def to_json(self) -> dict[str, Any]:
        """One JSON-ready object: NaN/inf become null, timestamps ISO 8601 UTC, days YYYY-MM-DD."""
        return {
            "period": {
                "since": self.window.since.isoformat(),
                "until": self.window.until.isoformat(),
                "team": self.team,
            },
            "totals": {k: _json_value(v) for k, v in self.totals.items()},
            **{name: frame_records(frame) for name, frame in self.tables.items()},
            "recommendations": [_json_value(r.as_dict()) for r in self.recommendations],
            "alerts": [_json_value(a.as_dict()) for a in self.alerts],
            "policy": {
                "success_tolerance": self.settings.policy.success_tolerance,
                "min_attempts": self.settings.policy.min_attempts,
                "near_limit": self.settings.policy.near_limit,
                "drop_below": self.settings.policy.drop_below,
            },
        }


def build_report(
    engine: Engine,
    window: ReportWindow,
    *,
    team: str | None = None,
    settings: ReportSettings | None = None,
    parallel: bool = True,
) -> Report:
    """Query the ledger and build the report.

    With `parallel`, the queries run as independent jobs on two connections: the attempt cube (the one big
    GROUP BY) split at a UTC midnight into two halves, then latency, quota and the rest. SQLite and psycopg
    release the GIL while the database works, so the jobs overlap on a multi-core machine; splitting the cube
    at a day boundary is exact because the day is one of its group keys.
    """
    settings = settings or ReportSettings()
    check_dialect(engine.dialect.name)
    f = ReportFilter(window, team)
    if parallel:
        halves = [ReportFilter(w, team) for w in split_at_midnight(window)]
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="report") as pool:
            cubes = [pool.submit(_on_connection, engine, load_cube, h) for h in halves]
            quota_job = pool.submit(_on_connection, engine, quota_table, window, settings.limits)
            moves_job = pool.submit(_on_connection, engine, _load_moves, f)
            parts = [c.result() for c in cubes]
            cube = pd.concat([p for p in parts if not p.empty] or parts[:1], ignore_index=True)
            # Started once the cube is in, so SQLite need not scan for the providers present.
            providers = sorted(cube["provider_id"].unique().tolist())
            latency_job = pool.submit(_on_connection, engine, load_latency_percentiles, f, providers)
            latency, quota = latency_job.result(), quota_job.result()
            transitions, events = moves_job.result()
    else:
        cube = _on_connection(engine, load_cube, f)
        latency = _on_connection(engine, load_latency_percentiles, f, sorted(cube["provider_id"].unique().tolist()))
        quota = _on_connection(engine, quota_table, window, settings.limits)
        transitions, events = _on_connection(engine, _load_moves, f)
    cube = with_successes(cube)
    tables = {name: cost_table(cube, keys) for name, keys in COST_DIMENSIONS.items()}
    tables["cost_over_time"] = cost_over_time(cube)
    circuit = circuit_summary(events, window, settings.circuit_cooldown_s)
    tables["performance"] = performance(cube, latency, transitions, circuit)
    tables["errors"] = error_mix(cube)
    tables["quota"] = quota
    tables["routing"] = routing_efficiency(cube, transitions)
    tables["health"] = health_trend(events)
    summary = totals(cube, transitions)
    # Failed tasks that failed for quota, counted apart (ledger.quota_failures).
    summary["quota_failures"] = _on_connection(engine, load_quota_failures, f)
    cache_by_team = _on_connection(engine, load_cache_savings, f)
    summary["cache_hits"] = int(cache_by_team["cache_hits"].sum())
    summary["cache_savings_usd"] = float(cache_by_team["cache_savings_usd"].sum())
    tables["by_team"] = with_team_savings(tables["by_team"], cache_by_team)
    recommendations = [
        # Answers served from the response cache are free and always succeed: no provider to move work to.
        *cheaper_providers(cube[cube["provider_id"] != CACHE_PROVIDER], settings.prices, settings.policy),
        *near_limits(quota, settings.policy),
        *provider_changes(tables["performance"], tables["errors"], events, settings.policy),
    ]
    alerts = check_alerts(
        settings.thresholds, by_day=tables["by_day"], performance=tables["performance"], totals=summary, quota=quota
    )
    return Report(window, team, summary, tables, recommendations, alerts, settings)


def _on_connection(engine: Engine, load: Callable[..., _T], *args: Any) -> _T:
    with engine.connect() as conn:
        return load(conn, *args)


def _load_moves(conn: Connection, f: ReportFilter) -> tuple[pd.DataFrame, pd.DataFrame]:
    return load_transitions(conn, f), load_events(conn, f)


def split_at_midnight(window: ReportWindow) -> list[ReportWindow]:
    """The window cut at the UTC midnight nearest its middle (unchanged when it holds no midnight inside)."""
    middle = window.since + (window.until - window.since) / 2
    cut = datetime(middle.year, middle.month, middle.day, tzinfo=UTC)
    if middle - cut > timedelta(hours=12):
        cut += timedelta(days=1)
    if not window.since < cut < window.until:
        return [window]
    return [ReportWindow(window.since, cut), ReportWindow(cut, window.until)]


def frame_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A table as JSON-ready rows (day columns as dates, other timestamps ISO, missing values null)."""
    return [{k: _json_value(v, column=k) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def _json_value(value: Any, column: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _json_value(v, column=k) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp | datetime):
        stamp = pd.Timestamp(value)
        return stamp.strftime("%Y-%m-%d") if column == "day" else stamp.isoformat()
    if isinstance(value, np.integer | bool | np.bool_):
        return value.item() if isinstance(value, np.generic) else value
    if isinstance(value, float | np.floating):
        number = float(value)
        return None if math.isnan(number) or math.isinf(number) else number
    return value
