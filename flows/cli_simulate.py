"""`switchboard simulate`: replay the recorded workload under another providers config."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from cyclopts import Parameter
from rich.table import Table

from flows.cli import EXIT_INVALID, EXIT_OK, app, err_console, out_console
from routing.errors import InputError


@app.command(name="simulate")
def simulate_command(
    *,
    providers: Annotated[Path, Parameter(help="The providers config to replay the workload under.")],
    since: Annotated[str, Parameter(help="Start of the recorded window: a duration (7d, 12h) or an ISO date.")] = "7d",
    until: Annotated[str | None, Parameter(help="End of the window (default: now).")] = None,
    strategy: Annotated[str | None, Parameter(help="Strategy to replay with (default: the config's).")] = None,
    output_format: Annotated[Literal["table", "json"], Parameter(name="--format", help="Output format.")] = "table",
) -> int:
    """What-if: replay the recorded tasks through the routing engine against simulated providers."""
    from analytics.window import report_window
    from flows.runtime import default_ledger, resolve_strategy
    from flows.simulate import load_workload, simulate
    from routing.config import load_config

    try:
        window = report_window(since, until)
        config = load_config(providers)
        chosen = resolve_strategy(config, strategy)
    except (InputError, ValueError) as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return EXIT_INVALID
    workload = load_workload(default_ledger(), window.since, window.until)
    result = simulate(workload, config, chosen)
    if output_format == "json":
        sys.stdout.write(json.dumps(result, default=str) + "\n")
    else:
        render(result)
    return EXIT_OK


def render(result: dict[str, Any]) -> None:
    actual, predicted = result["actual"], result["predicted"]
    table = Table(
        title=f"what-if over {result['tasks']} recorded tasks ({result['window']['since'][:19]} .. "
        f"{result['window']['until'][:19]}), strategy {result['strategy']}",
        title_justify="left",
    )
    for column in ("figure", "recorded", "predicted"):
        table.add_column(column, justify="left" if column == "figure" else "right")
    table.add_row("cost $", f"{actual['cost_usd']:.6f}", f"{predicted['cost_usd']:.6f}")
    table.add_row("attempts", str(actual["attempts"]), str(predicted["attempts"]))
    table.add_row("success rate", f"{actual['success_rate']:.1%}", f"{predicted['success_rate']:.1%}")
    table.add_row("failovers", str(actual["failovers"]), str(predicted["failovers"]))
    for provider in sorted(set(actual["provider_mix"]) | set(predicted["provider_mix"])):
        table.add_row(
            f"tasks served by {provider}",
            str(actual["provider_mix"].get(provider, 0)),
            str(predicted["provider_mix"].get(provider, 0)),
        )
    out_console.print(table)
    for event in predicted["quota_events"]:
        detail = event.get("reason") or event.get("limit") or ""
        line = f"predicted {event['kind']} on {event['provider']} at {event['at']} {detail}"
        out_console.print(line, highlight=False)
