"""Health trend from `provider_events`: circuit opens/closes and quota events per provider over time.

Each run (each process) starts its circuits in the `unknown` state and records nothing when it ends, so the
events are read with that in mind:

- a `circuit.closed` that leaves `unknown` is a new breaker's first success, not a recovery: it is not counted
  as a close;
- an open spell runs from `circuit.opened` to the provider's next circuit event (closed, half-open, or a new
  breaker's first event: the next run has started), and never longer than the cooldown, after which the
  breaker lets probe calls through (the half-open event itself is only recorded when the next call looks);
  a spell with no later event (the process ended) therefore ends at the cooldown, not at the end of the period.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd

from analytics.window import ReportWindow

OPENED, HALF_OPEN, CLOSED = "circuit.opened", "circuit.half_open", "circuit.closed"
# A breaker a new run (or process) has just created; its first transition is not a recovery.
NEW_BREAKER = "unknown"
# Always present in the trend table, so charts and readers can rely on them even on a quiet day.
BASE_KINDS = (OPENED, CLOSED)
# routing.config.CircuitSettings' default; the report is given the providers file's value.
DEFAULT_COOLDOWN_S = 30.0


def _column(kind: str) -> str:
    return kind.replace(".", "_").replace("-", "_")


def _is_new_breaker_close(kind: str, from_state: object) -> bool:
    return kind == CLOSED and from_state == NEW_BREAKER


def health_trend(events: pd.DataFrame) -> pd.DataFrame:
    """Events per UTC day, provider and kind (one column per kind, e.g. `circuit_opened`).

    `circuit_closed` counts recoveries only (closes from open or half-open), not a new breaker's first success.
    """
    inside = events[~events["before"]] if not events.empty else events
    if not inside.empty:
        starts = [_is_new_breaker_close(k, s) for k, s in zip(inside["kind"], inside["from_state"], strict=True)]
        inside = inside[~pd.Series(starts, index=inside.index, dtype=bool)]
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


def circuit_summary(events: pd.DataFrame, window: ReportWindow, cooldown_s: float = DEFAULT_COOLDOWN_S) -> pd.DataFrame:
    """Per provider: circuits opened in the window and seconds they spent open inside it (see the module doc).

    A spell that began before the window (the provider's last circuit event before `since` is an open) counts
    from `since`; one still open at `until` counts up to `until`.
    """
    columns = ["provider_id", "circuit_opens", "circuit_open_s"]
    circuit = events[events["kind"].isin((OPENED, HALF_OPEN, CLOSED))] if not events.empty else events
    if circuit.empty:
        return pd.DataFrame(columns=columns)
    longest = timedelta(seconds=cooldown_s)
    rows = []
    for provider, group in circuit.groupby("provider_id", sort=True):
        opened_at: datetime | None = None
        open_s, opens = 0.0, 0
        for kind, at, before in zip(group["kind"], group["at"], group["before"], strict=True):
            moment = at.to_pydatetime()
            if opened_at is not None:
                open_s += _spell_seconds(opened_at, moment, longest, window)
                opened_at = None
            if kind == OPENED:
                opened_at = moment
                opens += int(not before)
        if opened_at is not None:
            open_s += _spell_seconds(opened_at, window.until, longest, window)
        rows.append([provider, opens, open_s])
    return pd.DataFrame(rows, columns=columns)


def _spell_seconds(opened_at: datetime, next_event: datetime, longest: timedelta, window: ReportWindow) -> float:
    """The part inside the window of an open spell ended by `next_event` or by the cooldown, whichever is first."""
    start = max(opened_at, window.since)
    end = min(next_event, opened_at + longest, window.until)
    return max(0.0, (end - start).total_seconds())
