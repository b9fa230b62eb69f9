"""Human formatting of report tables (HTML and terminal), kept apart from the data, which stays numeric."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

_PERCENT_SUFFIXES = ("_rate", "_share", "utilisation", "share_of_attempts", "share_of_errors")


def usd(value: float) -> str:
    """Money for people: `$1,234.50` from a dollar up; below that three significant digits (at least cents).

    So $0.0029 reads `$0.00293`, not `$0.00`, and a threshold of $0.001 is not shown as `$0.00`.
    """
    return "$" + money(value)


def money(value: float) -> str:
    """`usd` without the dollar sign (table cells under a `cost_usd` heading)."""
    number = float(value)
    if number == 0 or not math.isfinite(number):
        return "0.00" if number == 0 else str(number)
    if abs(number) >= 1:
        return f"{number:,.2f}"
    decimals = max(2, 2 - math.floor(math.log10(abs(number))))
    text = f"{number:.{decimals}f}"
    whole, _, fraction = text.partition(".")
    # Keep at least cents but no trailing zeros beyond them: 0.500 -> 0.50, 0.0120 -> 0.012.
    return f"{whole}.{fraction[:2]}{fraction[2:].rstrip('0')}"


def duration(hours: float) -> str:
    """A forecast or wait for people: `2.5 h`, `12 min`, `1.2 min`, `40 s` (0.02 h is `1.2 min`, not `0.0 h`)."""
    seconds = float(hours) * 3600
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    if minutes < 10:
        return f"{minutes:.1f} min"
    if minutes < 60:
        return f"{minutes:.0f} min"
    return f"{hours:,.1f} h"


def format_value(column: str, value: Any) -> str:
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return ""
    if column == "day":
        return pd.Timestamp(value).strftime("%Y-%m-%d")
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M UTC")
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int) or (hasattr(value, "dtype") and getattr(value.dtype, "kind", "") in "iu"):
        return f"{int(value):,}"
    if isinstance(value, float) or hasattr(value, "dtype"):
        number = float(value)
        if column.endswith(_PERCENT_SUFFIXES):
            return f"{number:.1%}"
        if column.startswith("cost") or column.endswith("_usd") or column == "saving_usd":
            return money(number)
        if column.endswith("_ms"):
            return f"{number:,.0f}"
        if column.endswith("_h"):
            return duration(number)
        if column.endswith("_s"):
            return f"{number:,.1f}"
        return f"{number:,.4g}" if abs(number) < 1000 else f"{number:,.0f}"
    return str(value)


def display_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` with every cell rendered as text for people."""
    out = pd.DataFrame({c: [format_value(c, v) for v in frame[c].tolist()] for c in frame.columns})
    return out if len(frame.columns) else frame.copy()


def format_totals(totals: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, text) pairs for the headline numbers."""
    return [
        ("cost", usd(totals["cost_usd"])),
        ("at list price (subscription logins included)", usd(totals.get("list_price_usd", totals["cost_usd"]))),
        ("attempts", f"{totals['attempts']:,}"),
        ("attempt success rate", percent(totals.get("attempt_success_rate"))),
        ("tasks", f"{totals['tasks']:,}"),
        ("task success rate", percent(totals.get("task_success_rate"))),
        ("tokens in / out", f"{totals['tokens_input']:,} / {totals['tokens_output']:,}"),
        ("failovers / retries", f"{totals['failovers']:,} / {totals['retries']:,}"),
        ("rotations between subscriptions", f"{totals.get('rotations', 0):,}"),
        ("quota failures", f"{totals.get('quota_failures', 0):,}"),
        (
            "served from the response cache",
            f"{totals.get('cache_hits', 0):,} tasks, {usd(totals.get('cache_savings_usd', 0.0))} saved",
        ),
    ]


def percent(rate: float | None) -> str:
    """A fraction as a percentage; `n/a` when undefined (no attempts)."""
    if rate is None or (isinstance(rate, float) and math.isnan(rate)):
        return "n/a"
    return f"{rate:.1%}"


def shortlist(lines: list[str], limit: int = 10) -> list[str]:
    """The first `limit` lines (recommendations come biggest saving first) and a pointer to the rest."""
    if len(lines) <= limit:
        return lines
    return [*lines[:limit], f"… and {len(lines) - limit} more (see --format json or the HTML report)"]
