"""`switchboard report`: the usage report from the command line, without Prefect.

analytics and planning (pandas, matplotlib: 0.7 s to import) are imported by the functions that use them, so
registering the command costs every other command nothing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from cyclopts import Parameter
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from sqlalchemy.exc import SQLAlchemyError

from cli.app import EXIT_FAILED, EXIT_INVALID, EXIT_OK, app, fail, out_console
from cli.render import print_whole
from ledger import LedgerUnavailable, LedgerUnreadable, default_database_url, open_existing_ledger, read_failure
from routing import InputError, load_config

if TYPE_CHECKING:
    from analytics import Report, ReportSettings, ReportWindow

# The headline tables `--format table` prints, with their titles.
_HEADLINE = {
    "by_provider": "Cost by provider",
    "performance": "Provider performance",
    "by_team": "Cost by team",
    "by_task_type": "Cost by task type",
    "by_day": "Cost by day (UTC)",
    "quota": "Quota utilisation",
    "routing": "Routing efficiency",
}
# Columns shown in the terminal (the JSON, CSV and HTML carry all of them).
_COLUMNS = {
    "by_provider": [
        "provider_id",
        "attempts",
        "success_rate",
        "cost_usd",
        "cost_share",
        "tokens_input",
        "tokens_output",
    ],
    "performance": [
        "provider_id",
        "success_rate",
        "errors",
        "not_provider_failures",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "failovers",
        "retries",
        "circuit_open_s",
    ],
    "by_team": ["team", "attempts", "success_rate", "cost_usd", "list_price_usd", "savings_usd", "cache_hits"],
    "by_task_type": ["task_type", "attempts", "success_rate", "cost_usd", "tokens_input", "tokens_output"],
    "by_day": ["day", "attempts", "success_rate", "cost_usd", "tokens_input", "tokens_output"],
    "quota": ["provider_id", "subscription", "limit", "utilisation", "peak_utilisation", "forecast_exhaustion_h"],
    "routing": ["strategy", "decisions", "first_choice_rate", "failovers", "retries", "failover_time_s"],
}


def build_from_ledger(window: ReportWindow, team: str | None, settings: ReportSettings) -> Report:
    """The report from the default ledger, which must exist (it is never created here).

    Raises LedgerUnavailable (LedgerNotFound when the URL names no ledger) or LedgerUnreadable (the database
    failed while the report read it).
    """
    from analytics import build_report  # pandas: see the module docstring

    url = default_database_url()
    engine = open_existing_ledger(url)
    try:
        return build_report(engine, window, team=team, settings=settings)
    except SQLAlchemyError as exc:
        raise read_failure(url, exc) from None
    finally:
        engine.dispose()


def prepare_folder(out: Path) -> Path:
    """Create `--out` (and its parents) before the report is built, so a bad path fails fast; raises OSError."""
    folder = out.expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def describe_os_error(exc: OSError, fallback: Path) -> str:
    """`<path>: <reason>` for an OSError, naming the file that failed (not just the folder)."""
    path = exc.filename if exc.filename is not None else fallback
    return f"{path}: {exc.strerror or exc}"


@app.command(name="report")
def report(
    *,
    since: Annotated[str, Parameter(help="Start: a duration back from --until (7d, 12h, 30m) or an ISO date.")] = "7d",
    until: Annotated[str | None, Parameter(help="End (exclusive): a duration back from now or an ISO date.")] = None,
    team: Annotated[str | None, Parameter(help="Only attempts recorded for this team.")] = None,
    out: Annotated[Path | None, Parameter(help="Also write the CSVs, PNG charts, HTML and JSON here.")] = None,
    output_format: Annotated[
        Literal["table", "json", "csv"],
        Parameter(name="--format", help="table: headline tables; json: one object; csv: the by_provider table."),
    ] = "table",
    providers: Annotated[
        Path | None, Parameter(help="Providers file for limits, prices and alerts (default: $SWITCHBOARD_PROVIDERS).")
    ] = None,
) -> int:
    """Usage and cost report over the ledger: cost, performance, quota, routing, recommendations, alerts.

    Times are UTC; ISO values without an offset are UTC. Exit 2 on bad input (--since/--until, the providers
    file, an --out folder that cannot be created, a ledger that does not exist or cannot be opened); exit 1
    when the opened ledger fails while being read or a report file cannot be written. Nothing is printed on
    stdout then.
    """
    # analytics and planning bring pandas and matplotlib: see the module docstring.
    from analytics import csv_text, report_window, write_report
    from planning import report_settings

    try:
        window = report_window(since, until)
        settings = report_settings(load_config(providers.expanduser() if providers else None))
    except (ValueError, InputError) as exc:
        return fail(EXIT_INVALID, str(exc))
    try:
        folder = prepare_folder(out) if out is not None else None
    except OSError as exc:
        return fail(EXIT_INVALID, f"--out {out}: cannot create this folder ({describe_os_error(exc, Path(str(out)))})")
    try:
        built = build_from_ledger(window, team, settings)
    except LedgerUnavailable as exc:  # LedgerNotFound too: the URL names no ledger
        return fail(EXIT_INVALID, str(exc))
    except LedgerUnreadable as exc:
        return fail(EXIT_FAILED, str(exc))
    try:
        files = write_report(built, folder) if folder is not None else None
    except OSError as exc:
        return fail(EXIT_FAILED, f"cannot write the report: {describe_os_error(exc, Path(str(folder)))}")
    if output_format == "json":
        document = built.to_json()
        if files is not None:
            document["files"] = files.as_dict()
        sys.stdout.write(json.dumps(document, allow_nan=False) + "\n")
    elif output_format == "csv":
        sys.stdout.write(csv_text(built.tables["by_provider"]))
    else:
        render_report(built)
        if files is not None:
            out_console.print(f"report written to {files.folder} (open {files.html})", highlight=False)
    return EXIT_OK


def render_report(built: Report) -> None:
    from analytics import display_frame, format_totals, shortlist  # pandas: see the module docstring

    window = built.window
    scope = f" · team {escape(built.team)}" if built.team else ""
    out_console.print(
        f"[bold]Usage report[/] {window.since:%Y-%m-%d %H:%M} → {window.until:%Y-%m-%d %H:%M} UTC{scope}",
        highlight=False,
    )
    # One line however narrow the output: a pipe or file gets it whole, a terminal wraps it itself.
    totals = "  ·  ".join(f"{label} [bold]{escape(text)}[/]" for label, text in format_totals(built.totals))
    out_console.print(totals, soft_wrap=True, highlight=False)
    for name, title in _HEADLINE.items():
        frame = built.tables[name]
        if frame.empty:
            continue
        shown = display_frame(frame[[c for c in _COLUMNS[name] if c in frame.columns]])
        table = Table(title=title, title_justify="left")
        for column in shown.columns:
            table.add_column(column, justify="left" if column in _COLUMNS[name][:1] else "right", overflow="fold")
        for row in shown.itertuples(index=False):
            table.add_row(*(Text(cell) for cell in row))  # names are data, never console markup
        print_whole(out_console, table)
    for heading, lines in (
        ("Alerts", [a.message for a in built.alerts]),
        ("Recommendations", [r.message for r in built.recommendations]),
    ):
        if lines:
            out_console.print(f"[bold]{heading}[/]")
            for line in shortlist(lines):
                out_console.print(f"  • {line}", highlight=False, markup=False)


__all__ = ["report"]
