"""`switchboard simulate`: replay the recorded workload under another providers config.

analytics and planning (pandas: 0.7 s to import) are imported by the functions that use them, so registering
the command costs every other command nothing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from cyclopts import Parameter
from rich.table import Table
from rich.text import Text
from sqlalchemy.exc import SQLAlchemyError

from batches import resolve_strategy
from cli.app import EXIT_FAILED, EXIT_INVALID, EXIT_OK, app, fail, out_console
from cli.render import print_whole
from ledger import Ledger, LedgerUnavailable, default_database_url, open_existing_ledger, read_failure
from routing import InputError, load_config


@app.command(name="simulate")
def simulate_command(
    *,
    providers: Annotated[Path, Parameter(help="The providers config to replay the workload under.")],
    since: Annotated[str, Parameter(help="Start of the recorded window: a duration (7d, 12h) or an ISO date.")] = "7d",
    until: Annotated[str | None, Parameter(help="End of the window (default: now).")] = None,
    strategy: Annotated[str | None, Parameter(help="Strategy to replay with (default: the config's).")] = None,
    output_format: Annotated[Literal["table", "json"], Parameter(name="--format", help="Output format.")] = "table",
) -> int:
    """What-if: replay the recorded tasks through the routing engine against simulated providers.

    Exit 2 on bad input (--since/--until, the providers file or --strategy, a ledger that does not exist or
    cannot be opened); exit 1 when the opened ledger fails while being read.
    """
    # analytics and planning bring pandas: see the module docstring.
    from analytics import report_window
    from planning import load_workload, simulate

    try:
        window = report_window(since, until)
        config = load_config(providers)
        chosen = resolve_strategy(config, strategy)
    except (InputError, ValueError) as exc:
        return fail(EXIT_INVALID, str(exc))
    url = default_database_url()
    try:
        ledger = Ledger(open_existing_ledger(url))
    except LedgerUnavailable as exc:  # LedgerNotFound too: the URL names no ledger
        return fail(EXIT_INVALID, str(exc))
    try:
        workload = load_workload(ledger, window.since, window.until)
    except SQLAlchemyError as exc:
        return fail(EXIT_FAILED, str(read_failure(url, exc)))
    finally:
        ledger.close()
    result = simulate(workload, config, chosen)
    if output_format == "json":
        sys.stdout.write(json.dumps(result, default=str) + "\n")
    else:
        render(result)
    return EXIT_OK


def render(result: dict[str, Any]) -> None:
    from analytics import money, percent  # pandas: see the module docstring

    actual, predicted = result["actual"], result["predicted"]
    table = Table(
        title=Text(
            f"what-if over {result['tasks']} recorded tasks ({result['window']['since'][:19]} .. "
            f"{result['window']['until'][:19]} UTC), strategy {result['strategy']}"
        ),
        title_justify="left",
    )
    for column in ("figure", "recorded", "predicted"):
        table.add_column(column, justify="left" if column == "figure" else "right", overflow="fold")
    table.add_row("cost $", money(actual["cost_usd"]), money(predicted["cost_usd"]))
    table.add_row("at list price $", money(actual["list_price_usd"]), money(predicted["list_price_usd"]))
    table.add_row("attempts", str(actual["attempts"]), str(predicted["attempts"]))
    table.add_row("tasks completed", str(actual["completed"]), str(predicted["completed"]))
    for key, label in (("task_success_rate", "task success rate"), ("attempt_success_rate", "attempt success rate")):
        table.add_row(label, percent(actual[key]), percent(predicted[key]))
    table.add_row("failovers", str(actual["failovers"]), str(predicted["failovers"]))
    for provider in sorted(set(actual["provider_mix"]) | set(predicted["provider_mix"])):
        table.add_row(
            Text(f"tasks served by {provider}"),  # a provider name is data, never console markup
            str(actual["provider_mix"].get(provider, 0)),
            str(predicted["provider_mix"].get(provider, 0)),
        )
    print_whole(out_console, table)
    estimated = result["workload"]["usage_estimated"]
    if estimated:
        out_console.print(
            f"{estimated} recorded task(s) never succeeded; they are priced at their task type's median tokens.",
            highlight=False,
        )
    quota = quota_table(actual["quota_events"], predicted["quota_events"])
    if quota is not None:
        print_whole(out_console, quota)


def quota_table(recorded: list[dict[str, Any]], predicted: list[dict[str, Any]]) -> Table | None:
    """Quota events per provider and kind, recorded beside predicted: how many, and the first one's time."""
    keys = sorted({(e["provider"] or "", e["kind"]) for e in [*recorded, *predicted]})
    if not keys:
        return None
    table = Table(title="quota events (UTC)", title_justify="left")
    for column in ("provider", "event", "recorded", "predicted"):
        table.add_column(column, justify="left", overflow="fold")
    for provider, kind in keys:
        table.add_row(Text(provider), kind, _when(recorded, provider, kind), _when(predicted, provider, kind))
    return table


def _when(events: list[dict[str, Any]], provider: str, kind: str) -> str:
    times = sorted(e["at"] for e in events if (e["provider"] or "") == provider and e["kind"] == kind)
    if not times:
        return "none"
    first = times[0][:19].replace("T", " ")
    return first if len(times) == 1 else f"{len(times)} times, first {first}"


__all__ = ["quota_table", "simulate_command"]
