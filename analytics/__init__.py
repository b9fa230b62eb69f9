"""Ledger -> pandas -> usage and cost reports: tables, charts, HTML, recommendations and alerts; the recorded
workload a what-if replay runs (`analytics.workload`; the replay itself is in planning/replay.py).

Imports `ledger`, and from `providers` only its pure value objects and window arithmetic (`providers.models`,
`providers.usage_window`: the quota forecast is routing's own projection, not a copy). Config values (limits,
prices, alert thresholds, the circuit cooldown) come in as plain arguments.
"""

from analytics.alerts import Alert, AlertThresholds, check_alerts
from analytics.format import display_frame, format_totals, money, percent, shortlist, usd
from analytics.outcomes import NOT_PROVIDER_FAILURES
from analytics.output import ReportFiles, csv_text, write_report
from analytics.quota import QuotaLimit
from analytics.recommend import Recommendation, RecommendPolicy, TokenPrice
from analytics.report import TABLES, Report, ReportSettings, build_report, frame_records
from analytics.source import LedgerNotFound, LedgerUnreadable, open_existing_ledger, read_failure
from analytics.window import ReportWindow, parse_duration, parse_instant, report_window

__all__ = [
    "NOT_PROVIDER_FAILURES",
    "TABLES",
    "Alert",
    "AlertThresholds",
    "LedgerNotFound",
    "LedgerUnreadable",
    "QuotaLimit",
    "RecommendPolicy",
    "Recommendation",
    "Report",
    "ReportFiles",
    "ReportSettings",
    "ReportWindow",
    "TokenPrice",
    "build_report",
    "check_alerts",
    "csv_text",
    "display_frame",
    "format_totals",
    "frame_records",
    "money",
    "open_existing_ledger",
    "parse_duration",
    "parse_instant",
    "percent",
    "read_failure",
    "report_window",
    "shortlist",
    "usd",
    "write_report",
]
