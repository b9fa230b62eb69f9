"""Health trend from `provider_events`: circuit opens/closes and quota events per provider over time."""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from analytics.window import ReportWindow

OPENED, HALF_OPEN, CLOSED = "circuit.opened", "circuit.half_open", "circuit.closed"
# Always present in the trend table, so charts and readers can rely on them even on a quiet day.
BASE_KINDS = (OPENED, CLOSED)


def _column(kind: str) -> str:
    return kind.replace(".", "_").replace("-", "_")


def health_trend(events: pd.DataFrame) -> pd.DataFrame:
    """Events per UTC day, provider and kind (one column per kind, e.g. `circuit_opened`)."""
    inside = events[~events["before"]] if not events.empty else events
    kinds = sorted(set(BASE_KINDS) | set(inside["kind"]))
    columns = ["day", "provider_id", *(_column(k) for k in kinds)]
    if inside.empty:
        return pd.DataFrame(columns=columns)
    day = inside["at"].dt.floor("D")
    counts = pd.crosstab([day.rename("day"), inside["provider_id"]], inside["kind"]).reindex(
        columns=kinds, fill_value=0
    )
    counts.columns = [_column(k) for k in kinds]
    return counts.reset_index()[columns].astype({_column(k): "int64" for k in kinds})


def circuit_summary(events: pd.DataFrame, window: ReportWindow) -> pd.DataFrame:
    """Per provider: circuits opened in the window and seconds spent not closed (open or half-open).

    A provider whose last circuit event before the window left it open counts as open from `since`; one still
    open at the end counts until `until`.
    """
    columns = ["provider_id", "circuit_opens", "circuit_open_s"]
    circuit = events[events["kind"].isin((OPENED, HALF_OPEN, CLOSED))] if not events.empty else events
    if circuit.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for provider, group in circuit.groupby("provider_id", sort=True):
        opened_at: datetime | None = None
        open_s, opens = 0.0, 0
        for kind, at, before in zip(group["kind"], group["at"], group["before"], strict=True):
            at = window.since if before else at.to_pydatetime()
            if kind in (OPENED, HALF_OPEN):
                opens += int(kind == OPENED and not before)
                opened_at = opened_at or at
            elif opened_at is not None:
                open_s += (at - opened_at).total_seconds()
                opened_at = None
        if opened_at is not None:
            open_s += (window.until - opened_at).total_seconds()
        rows.append([provider, opens, open_s])
    return pd.DataFrame(rows, columns=columns)
