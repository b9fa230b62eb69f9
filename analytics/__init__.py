"""Ledger -> pandas -> usage and cost reports: tables, charts, HTML, recommendations and alerts.

Imports `ledger` only; config values (limits, prices, alert thresholds) come in as plain arguments.
"""

from analytics.alerts import Alert, AlertThresholds, check_alerts
from analytics.output import ReportFiles, csv_text, write_report
from analytics.quota import QuotaLimit
from analytics.recommend import Recommendation, RecommendPolicy, TokenPrice
from analytics.report import TABLES, Report, ReportSettings, build_report, frame_records
from analytics.window import ReportWindow, parse_duration, parse_instant, report_window

__all__ = [
    "TABLES",
    "Alert",
    "AlertThresholds",
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
    "frame_records",
    "parse_duration",
    "parse_instant",
    "report_window",
    "write_report",
]
