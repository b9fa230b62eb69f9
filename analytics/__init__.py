"""Ledger -> pandas -> usage and cost reports: tables, charts, HTML, recommendations and alerts; the recorded
workload a what-if replay runs (`analytics.workload`; the replay itself is in planning/replay.py).

Imports `ledger`, and from `providers` only pure values: `Price`, `TokenUsage`, the outcome vocabulary and the
sliding-window projection (the quota forecast is routing's own projection, not a copy). Config values (limits,
prices, alert thresholds, the circuit cooldown) come in as plain arguments (`planning.report_settings` builds them
from a providers file).
"""

from analytics.alerts import Alert, AlertThresholds, check_alerts
from analytics.format import display_frame, format_totals, money, percent, shortlist, usd
from analytics.outcomes import NOT_PROVIDER_FAILURES, SUCCESS, counts_for_provider, rate_or_none
from analytics.output import ReportFiles, csv_text, write_report
from analytics.quota import QuotaLimit
from analytics.recommend import Recommendation, RecommendPolicy
from analytics.report import TABLES, Report, ReportSettings, build_report, frame_records
from analytics.window import ReportWindow, parse_duration, parse_instant, report_window
from analytics.workload import (
    CALLER_ERROR,
    ProviderProfile,
    RecordedCall,
    TaskFacts,
    WorkItem,
    Workload,
    build_workload,
    facts_from_decision,
)

__all__ = [
    "CALLER_ERROR",
    "NOT_PROVIDER_FAILURES",
    "SUCCESS",
    "TABLES",
    "Alert",
    "AlertThresholds",
    "ProviderProfile",
    "QuotaLimit",
    "RecommendPolicy",
    "Recommendation",
    "RecordedCall",
    "Report",
    "ReportFiles",
    "ReportSettings",
    "ReportWindow",
    "TaskFacts",
    "WorkItem",
    "Workload",
    "build_report",
    "build_workload",
    "check_alerts",
    "counts_for_provider",
    "csv_text",
    "display_frame",
    "facts_from_decision",
    "format_totals",
    "frame_records",
    "money",
    "parse_duration",
    "parse_instant",
    "percent",
    "rate_or_none",
    "report_window",
    "shortlist",
    "usd",
    "write_report",
]
