"""The `usage_report` Prefect flow: ledger -> report folder (CSV, PNG, HTML, JSON) + artifacts + alert events.

Thin on purpose: every figure is computed by `analytics`; this module only schedules the steps, publishes
the results to Prefect and turns alerts into `switchboard.alert.<kind>` events for automations.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from analytics import (
    Report,
    ReportFiles,
    ReportSettings,
    ReportWindow,
    build_report,
    format_totals,
    frame_records,
    report_window,
    shortlist,
    usd,
    write_report,
)
from ledger import data_dir, open_existing_ledger
from planning import report_settings
from routing import load_config

# Tables published as Prefect table artifacts (the rest are in the CSVs and the HTML).
ARTIFACT_TABLES = ("by_provider", "by_team", "by_task_type", "by_day", "performance", "quota", "routing")


def slug(text: str) -> str:
    """Lowercase letters, digits and single dashes: what Prefect artifact keys allow."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", text.lower())).strip("-")


def artifact_key(name: str, team: str | None = None) -> str:
    """`usage-report-<name>[-team-<team>]`."""
    return slug(f"usage-report-{name}" + (f"-team-{team}" if team else ""))


def default_folder(window: ReportWindow, team: str | None) -> Path:
    """`<data dir>/reports/<YYYY-MM-DD of until>` (a team report gets its own folder beside it)."""
    return data_dir() / "reports" / (f"{window.until:%Y-%m-%d}" + (f"-team-{slug(team)}" if team else ""))


# The ledger may be busy (SQLite lock, a PostgreSQL failover): a retry a moment later usually succeeds.
@task(name="build-usage-report", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE, persist_result=False)
def build_step(window: ReportWindow, team: str | None, settings: ReportSettings) -> Report:
    engine = open_existing_ledger()
    try:
        return build_report(engine, window, team=team, settings=settings)
    finally:
        engine.dispose()


@task(name="write-usage-report", retries=1, retry_delay_seconds=2, cache_policy=NO_CACHE, persist_result=False)
def write_step(report: Report, folder: Path) -> ReportFiles:
    return write_report(report, folder)


@task(name="publish-usage-report", cache_policy=NO_CACHE, persist_result=False)
def publish_step(report: Report, files: ReportFiles) -> None:
    for name in ARTIFACT_TABLES:
        create_table_artifact(
            table=frame_records(report.tables[name]),
            key=artifact_key(name, report.team),
            description=f"Usage report {name} ({_period(report)})",
        )
    create_markdown_artifact(
        markdown=summary_markdown(report, files),
        key=artifact_key("summary", report.team),
        description=f"Usage report summary ({_period(report)})",
    )


@task(name="emit-usage-alerts", cache_policy=NO_CACHE, persist_result=False)
def alert_step(report: Report) -> int:
    for alert in report.alerts:
        emit_event(
            event=f"switchboard.alert.{alert.kind}",
            resource={
                "prefect.resource.id": f"switchboard.alert.{alert.kind}.{slug(alert.subject)}",
                "prefect.resource.name": alert.subject,
            },
            payload={
                **alert.as_dict(),
                "since": report.window.since.isoformat(),
                "until": report.window.until.isoformat(),
            },
        )
    return len(report.alerts)


@flow(name="usage-report", persist_result=False)
def usage_report(
    since: str = "1d",
    until: str | None = None,
    team: str | None = None,
    out_dir: str | None = None,
    providers: str | None = None,
) -> dict[str, Any]:
    """Build the usage report for [since, until) and write it to a dated folder; returns paths and totals."""
    logger = get_run_logger()
    progress = create_progress_artifact(
        progress=0.0, key=artifact_key("progress", team), description="Building the usage report"
    )
    window = report_window(since, until)
    settings = report_settings(load_config(providers))
    # A report never creates a ledger: a missing one fails here, at once, instead of after the step's retries.
    open_existing_ledger().dispose()
    update_progress_artifact(artifact_id=progress, progress=10.0)
    report = build_step(window, team, settings)
    update_progress_artifact(artifact_id=progress, progress=60.0)
    files = write_step(report, Path(out_dir).expanduser() if out_dir else default_folder(window, team))
    update_progress_artifact(artifact_id=progress, progress=80.0)
    publish_step(report, files)
    alerts = alert_step(report)
    update_progress_artifact(artifact_id=progress, progress=100.0)
    logger.info(
        "usage report %s: %s over %d attempts, %d alerts, %d recommendations -> %s",
        _period(report),
        usd(report.totals["cost_usd"]),
        report.totals["attempts"],
        alerts,
        len(report.recommendations),
        files.html,
    )
    document = report.to_json()
    return {
        "since": document["period"]["since"],
        "until": document["period"]["until"],
        "team": team,
        "totals": document["totals"],
        "alerts": document["alerts"],
        "recommendations": len(report.recommendations),
        "files": files.as_dict(),
    }


def summary_markdown(report: Report, files: ReportFiles) -> str:
    lines = [f"# Usage report {_period(report)}", ""]
    lines += ["| | |", "|---|---|", *(f"| {label} | {text} |" for label, text in format_totals(report.totals)), ""]
    lines += ["## Alerts", ""]
    lines += [f"- **{a.kind}**: {a.message}" for a in report.alerts] or ["No alert thresholds crossed."]
    lines += ["", "## Recommendations", ""]
    lines += [f"- {m}" for m in shortlist([r.message for r in report.recommendations])] or [
        "No recommendations for this period."
    ]
    lines += ["", f"Full report: `{files.html}` (CSV and PNG files in `{files.folder}`)."]
    return "\n".join(lines)


def _period(report: Report) -> str:
    team = f", team {report.team}" if report.team else ""
    return f"{report.window.since:%Y-%m-%d %H:%M} to {report.window.until:%Y-%m-%d %H:%M} UTC{team}"


__all__ = ["artifact_key", "summary_markdown", "usage_report"]
