"""Human-readable tables for `switchboard run`, `runs` and `show`."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

_STATUS_STYLE = {"completed": "green", "failed": "red", "skipped": "yellow", "cancelled": "magenta"}


def _status(status: str) -> str:
    style = _STATUS_STYLE.get(status)
    return f"[{style}]{status}[/]" if style else status


def _attempts_text(attempts: list[dict[str, Any]]) -> str:
    return " → ".join(f"{a['provider']}:{'ok' if a['outcome'] == 'success' else a['outcome']}" for a in attempts) or "-"


def render_run(console: Console, summary: dict[str, Any], *, explain: bool = False, outputs: bool = False) -> None:
    run, totals = summary["run"], summary["totals"]
    table = Table(title=f"run {run['id']} · {run['name']} · {run['status']}", title_justify="left")
    for column in ("task", "status", "provider", "attempts", "cost $", "latency ms"):
        table.add_column(
            column, justify="right" if column in ("cost $", "latency ms") else "left", no_wrap=column != "attempts"
        )
    for t in summary["tasks"]:
        table.add_row(
            t["id"],
            _status(t["status"]),
            t["provider"] or "-",
            _attempts_text(t["attempts"]),
            f"{t['cost_usd']:.6f}",
            f"{t['latency_ms']:.0f}",
        )
    console.print(table)
    console.print(
        f"completed {totals['completed']} · failed {totals['failed']} · skipped {totals['skipped']}"
        + (f" · cancelled {totals['cancelled']}" if totals.get("cancelled") else "")
        + f" · failovers {totals['failovers']} · cost ${totals['cost_usd']:.6f}",
        highlight=False,
    )
    if run.get("ui_url"):
        console.print(f"Prefect flow run: {run['ui_url']}", highlight=False, soft_wrap=True)
    elif run.get("flow_run_id"):
        console.print(f"Prefect flow run: {run['flow_run_id']}", highlight=False)
    for t in summary["tasks"]:
        if explain and t.get("decision"):
            d = t["decision"]
            skipped = ", ".join(f"{p} ({why})" for p, why in (d.get("skipped") or {}).items()) or "none"
            console.print(
                f"[bold]{t['id']}[/]: strategy {d.get('strategy')}; order {' > '.join(d.get('order') or [])}; "
                f"skipped {skipped}; chosen {d.get('chosen') or '-'}",
                highlight=False,
            )
        if outputs and (t["output"] or t.get("error")):
            console.print(
                f"[bold]{t['id']}[/] output: {t['output'] or ''}"
                + (f"\n  error: {t['error']}" if t.get("error") else ""),
                highlight=False,
            )


def render_runs(console: Console, summaries: list[dict[str, Any]]) -> None:
    table = Table(title="runs (newest first)", title_justify="left")
    for column in ("run", "batch", "status", "started (UTC)", "done", "failed", "cost $"):
        # Ids must stay whole: people copy them into `switchboard show`.
        table.add_column(column, no_wrap=column == "run")
    for s in summaries:
        run, totals = s["run"], s["totals"]
        total = len(s["tasks"])
        table.add_row(
            run["id"],
            run["name"],
            _status(run["status"]),
            run["started_at"][:19].replace("T", " "),
            f"{totals['completed']}/{total}",
            str(totals["failed"] + totals["skipped"]),
            f"{totals['cost_usd']:.6f}",
        )
    console.print(table)
