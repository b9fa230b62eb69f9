"""Human formatting of report tables (HTML and terminal), kept apart from the data, which stays numeric."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

_PERCENT_SUFFIXES = ("_rate", "_share", "utilisation", "share_of_attempts", "share_of_errors")


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
        if column == "cost_usd" or column.startswith("cost"):
            return f"{number:,.4f}"
        if column.endswith("_ms"):
            return f"{number:,.0f}"
        if column.endswith(("_s", "_h")) or column == "window_s":
            return f"{number:,.1f}"
        return f"{number:,.4g}" if abs(number) < 1000 else f"{number:,.0f}"
    return str(value)


def display_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` with every cell rendered as text for people."""
    out = pd.DataFrame({c: [format_value(c, v) for v in frame[c].tolist()] for c in frame.columns})
    return out if len(frame.columns) else frame.copy()


def format_totals(totals: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, text) pairs for the headline numbers."""
    rate = totals.get("success_rate")
    return [
        ("cost", f"${totals['cost_usd']:,.2f}"),
        ("attempts", f"{totals['attempts']:,}"),
        ("success rate", "n/a" if rate is None or (isinstance(rate, float) and math.isnan(rate)) else f"{rate:.1%}"),
        ("tasks routed", f"{totals['tasks']:,}"),
        ("tokens in / out", f"{totals['tokens_input']:,} / {totals['tokens_output']:,}"),
        ("failovers / retries", f"{totals['failovers']:,} / {totals['retries']:,}"),
    ]
