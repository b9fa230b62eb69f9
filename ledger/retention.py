"""Retention (`switchboard db prune --before DATE [--outputs-only]`): old runs' answers, or the runs themselves,
leave the ledger; what the usage report needs of them stays as totals.

A run is pruned when it finished before DATE (a run that never finished, e.g. one running now, is kept whole).
Pruning a run removes it, its tasks and its attempts, after adding its attempts' sums to `usage_totals` (by
UTC day, provider, subscription, model, task type, team, strategy and outcome: the report's own keys), and
removes provider events before DATE. With `outputs_only` nothing is removed but those runs' answer texts.
Everything happens in one transaction: a failure leaves the ledger as it was.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, delete, func, insert, select, update

from ledger.models import ApiDeferredTask, ProviderEvent, ProviderUsage, Run, TaskRow, UsageTotal, VendorBatchRequest

_U = cast(Table, ProviderUsage.__table__)
_TOTALS = cast(Table, UsageTotal.__table__)
TOTAL_KEYS = ("provider_id", "subscription", "model", "task_type", "team", "strategy", "outcome")
TOTAL_SUMS = (
    "cost_usd",
    "tokens_input",
    "tokens_output",
    "tokens_cache_read",
    "tokens_cache_write",
    "tokens_reasoning",
)
_CHUNK = 500  # run ids per IN (...) list


@dataclass(frozen=True)
class PruneResult:
    before: datetime
    outputs_only: bool
    runs: int  # runs pruned (or whose answers were cleared)
    attempts: int  # attempts removed (their sums kept), or answers cleared on attempts
    tasks: int
    events: int
    cost_usd: float  # of the attempts removed, kept in the totals
    total_rows: int  # rows added to usage_totals
    unfinished_kept: int  # runs started before DATE that never finished, kept whole
    dry_run: bool


def prune(engine: Engine, before: datetime, *, outputs_only: bool = False, dry_run: bool = False) -> PruneResult:
    if before.tzinfo is None:
        raise ValueError("prune needs a UTC-aware datetime")
    with engine.begin() as conn:
        runs = list(conn.scalars(select(Run.run_id).where(Run.finished_at.is_not(None), Run.finished_at < before)))
        unfinished = conn.scalar(
            select(func.count()).select_from(Run).where(Run.finished_at.is_(None), Run.started_at < before)
        )
        attempts = tasks = 0
        cost = 0.0
        for chunk in _chunks(runs):
            attempts += conn.scalar(select(func.count()).select_from(_U).where(_U.c.run_id.in_(chunk))) or 0
            tasks += conn.scalar(select(func.count()).select_from(TaskRow).where(TaskRow.run_id.in_(chunk))) or 0
            cost += conn.scalar(select(func.coalesce(func.sum(_U.c.cost_usd), 0.0)).where(_U.c.run_id.in_(chunk))) or 0
        events = (
            0
            if outputs_only
            else conn.scalar(select(func.count()).select_from(ProviderEvent).where(ProviderEvent.at < before)) or 0
        )
        total_rows = 0
        if not dry_run:
            if outputs_only:
                _clear_outputs(conn, runs)
            else:
                total_rows = _keep_totals(conn, runs)
                _remove(conn, runs, before)
    return PruneResult(
        before=before,
        outputs_only=outputs_only,
        runs=len(runs),
        attempts=attempts,
        tasks=tasks,
        events=events,
        cost_usd=0.0 if outputs_only else float(cost),
        total_rows=total_rows,
        unfinished_kept=unfinished or 0,
        dry_run=dry_run,
    )


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _clear_outputs(conn: Connection, runs: list[str]) -> None:
    for chunk in _chunks(runs):
        conn.execute(update(TaskRow).where(TaskRow.run_id.in_(chunk)).values(output=None))
        conn.execute(update(_U).where(_U.c.run_id.in_(chunk), _U.c.output.is_not(None)).values(output=None))


def _keep_totals(conn: Connection, runs: list[str]) -> int:
    """Add the runs' attempts to `usage_totals`, one row per UTC day and key (summed here, in Python: the day of
    a timestamp is spelt differently in each database, and the rows are read once anyway)."""
    # attempts, first attempts, TOTAL_SUMS, list price, cache saving
    sums: dict[tuple[Any, ...], list[float]] = defaultdict(lambda: [0.0] * (4 + len(TOTAL_SUMS)))
    columns = [
        _U.c.started_at,
        _U.c.attempt,
        *(_U.c[k] for k in TOTAL_KEYS),
        *(_U.c[s] for s in TOTAL_SUMS),
        func.coalesce(_U.c.list_price_usd, _U.c.cost_usd),  # at list price, charged or not
        _U.c.cache_saved_usd,  # on cache hits: what the answer they were served cost
    ]
    for chunk in _chunks(runs):
        for row in conn.execute(select(*columns).where(_U.c.run_id.in_(chunk))):
            started: datetime = row[0]
            day = (started if started.tzinfo else started.replace(tzinfo=UTC)).astimezone(UTC).strftime("%Y-%m-%d")
            entry = sums[(day, *row[2 : 2 + len(TOTAL_KEYS)])]
            entry[0] += 1
            entry[1] += 1 if row[1] == 1 else 0
            for i, value in enumerate(row[2 + len(TOTAL_KEYS) :]):
                entry[2 + i] += value or 0
    now = datetime.now(UTC)
    rows = [
        {
            "day": key[0],
            **dict(zip(TOTAL_KEYS, key[1:], strict=True)),
            "attempts": int(values[0]),
            "first_attempts": int(values[1]),
            "cost_usd": values[2],
            **{name: int(v) for name, v in zip(TOTAL_SUMS[1:], values[3:-2], strict=True)},
            "list_price_usd": values[-2],
            "cache_saved_usd": values[-1],
            "pruned_at": now,
        }
        for key, values in sums.items()
    ]
    if rows:
        conn.execute(insert(_TOTALS), rows)
    return len(rows)


def _remove(conn: Connection, runs: list[str], before: datetime) -> None:
    for chunk in _chunks(runs):
        conn.execute(delete(_U).where(_U.c.run_id.in_(chunk)))
        conn.execute(delete(TaskRow).where(TaskRow.run_id.in_(chunk)))
        conn.execute(delete(VendorBatchRequest).where(VendorBatchRequest.run_id.in_(chunk)))
        conn.execute(delete(ApiDeferredTask).where(ApiDeferredTask.run_id.in_(chunk)))
        conn.execute(delete(Run).where(Run.run_id.in_(chunk)))
    conn.execute(delete(ProviderEvent).where(ProviderEvent.at < before))


__all__ = ["TOTAL_KEYS", "TOTAL_SUMS", "PruneResult", "prune"]
