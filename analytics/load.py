"""Ledger -> pandas: aggregate in SQL, fetch raw values only where a statistic needs them (latency percentiles).

Every query reads `provider_usage` at most once in full; the results are small frames (one row per group), so a
report over millions of attempts stays a few seconds and a few hundred MB. Timestamps come back UTC-aware.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import numpy as np
import pandas as pd
from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    Table,
    and_,
    case,
    exists,
    func,
    literal,
    or_,
    select,
    text,
)

from analytics.sql import Unit, check_dialect, parse_bucket, utc_bucket
from analytics.window import ReportWindow
from ledger import (
    CACHE_PROVIDER,
    QUOTA_OUTCOMES,
    QUOTA_REFUSED,
    ProviderEvent,
    ProviderUsage,
    TaskRow,
    UsageTotal,
    follows_failure,
    move_kind,
)

_U = cast(Table, ProviderUsage.__table__)
_E = cast(Table, ProviderEvent.__table__)
_T = cast(Table, UsageTotal.__table__)
PERCENTILES = (50.0, 95.0, 99.0)
CUBE_KEYS = ("day", "provider_id", "subscription", "model", "task_type", "team", "strategy", "outcome")
TOKEN_COLUMNS = ("tokens_input", "tokens_output", "tokens_cache_read", "tokens_cache_write", "tokens_reasoning")
# cost_usd is what was charged; list_price_usd the same calls at list price (a subscription login's are charged 0).
CUBE_COLUMNS = (*CUBE_KEYS, "attempts", "first_attempts", "cost_usd", "list_price_usd", *TOKEN_COLUMNS)
# Rows fetched per round trip when raw values are needed; bounds the Python objects alive at once.
_FETCH_CHUNK = 100_000


@dataclass(frozen=True, slots=True)
class ReportFilter:
    window: ReportWindow
    team: str | None = None


def _usage_where(f: ReportFilter, table: Table = _U) -> list[ColumnElement[bool]]:
    clauses = [table.c.started_at >= f.window.since, table.c.started_at < f.window.until]
    if f.team is not None:
        clauses.append(table.c.team == f.team)
    return clauses


def load_cube(conn: Connection, f: ReportFilter) -> pd.DataFrame:
    """Attempts grouped by every dimension a report slices on (provider .. day, outcome), with their sums.

    One GROUP BY over the window replaces reading every attempt: all cost, token, success-rate and error-mix
    tables are re-aggregations of this frame in pandas.
    """
    dialect = conn.dialect.name
    _roomy_postgres(conn)
    day = utc_bucket(_U.c.started_at, "day", dialect).label("day")
    # Day first: rows are stored roughly in time order, which makes the sorter's comparisons end early.
    keys = [day, _U.c.provider_id, _U.c.subscription, _U.c.model, _U.c.task_type, _U.c.team, _U.c.strategy]
    keys.append(_U.c.outcome)
    stmt = (
        select(
            *keys,
            func.count().label("attempts"),
            func.sum(case((_U.c.attempt == 1, 1), else_=0)).label("first_attempts"),
            func.sum(_U.c.cost_usd).label("cost_usd"),
            func.sum(func.coalesce(_U.c.list_price_usd, _U.c.cost_usd)).label("list_price_usd"),
            *(func.sum(_U.c[c]).label(c) for c in TOKEN_COLUMNS),
        )
        .where(*_usage_where(f))
        .group_by(*keys)
    )
    frame = fetch_frame(conn, stmt, CUBE_COLUMNS)
    # Later attempts of pruned tasks (attempts - first attempts): counting tasks takes them off, as it takes off
    # the moves `load_transitions` pairs for attempts still stored (0 for those here).
    frame["kept_inner"] = 0
    kept = _kept_totals(conn, f)
    if not kept.empty:  # pruned days (`switchboard db prune`) count through their kept sums
        kept["kept_inner"] = kept["attempts"].astype("int64") - kept["first_attempts"].astype("int64")
        frame = pd.concat([frame, kept], ignore_index=True) if not frame.empty else kept
        frame = frame.groupby(list(CUBE_KEYS), dropna=False, as_index=False, sort=False).sum()
    frame["day"] = parse_bucket(frame["day"], "day")
    for column in ("attempts", "first_attempts", "kept_inner", *TOKEN_COLUMNS):
        frame[column] = frame[column].astype("int64")
    for column in ("cost_usd", "list_price_usd"):
        frame[column] = frame[column].astype("float64")
    return frame


def _kept_totals(conn: Connection, f: ReportFilter) -> pd.DataFrame:
    """The kept sums of pruned attempts, for the days that start inside the window (a pruned day is whole)."""
    first, past = _day_at_or_after(f.window.since), _day_at_or_after(f.window.until)
    keys = [_T.c.day, *(_T.c[k] for k in CUBE_KEYS[1:])]
    sums = [
        *(func.sum(_T.c[c]).label(c) for c in ("attempts", "first_attempts", "cost_usd")),
        # Rows pruned before the list price was kept (migration 0008) hold none: their cost then.
        func.sum(func.coalesce(_T.c.list_price_usd, _T.c.cost_usd)).label("list_price_usd"),
        *(func.sum(_T.c[c]).label(c) for c in TOKEN_COLUMNS),
    ]
    clauses = [_T.c.day >= first, _T.c.day < past]
    if f.team is not None:
        clauses.append(_T.c.team == f.team)
    stmt = select(*keys, *sums).where(*clauses).group_by(*keys)
    return fetch_frame(conn, stmt, CUBE_COLUMNS)


def _day_at_or_after(moment: datetime) -> str:
    """The first UTC day starting at or after `moment`, as the 'YYYY-MM-DD' the totals are keyed by."""
    midnight = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight if midnight == moment else midnight + timedelta(days=1)).strftime("%Y-%m-%d")


def _roomy_postgres(conn: Connection) -> None:
    # PostgreSQL guesses ~1 group per row for the cube and, at the default 4 MB work_mem, sorts 1M rows on
    # disk; with room it hashes the (few thousand) real groups in memory instead: ~1 s instead of ~3 s at 1M
    # rows. SET LOCAL ends with this read transaction, so the pooled connection goes back unchanged.
    if conn.dialect.name == "postgresql":
        conn.execute(text("SET LOCAL work_mem = '256MB'"))


def fetch_frame(conn: Connection, stmt: Select[Any], columns: tuple[str, ...] | list[str]) -> pd.DataFrame:
    """Run `stmt` and read its rows straight off the DB-API cursor (no per-row Row objects); plain values only."""
    result = conn.execute(stmt)
    try:
        rows = result.cursor.fetchall() if result.cursor is not None else []
    finally:
        result.close()
    return pd.DataFrame.from_records(rows, columns=list(columns), coerce_float=True)


def distinct_providers(conn: Connection, f: ReportFilter) -> list[str]:
    return sorted(conn.execute(select(_U.c.provider_id).where(*_usage_where(f)).distinct()).scalars())


def load_latency_percentiles(conn: Connection, f: ReportFilter, providers: list[str] | None = None) -> pd.DataFrame:
    """p50/p95/p99 (linear interpolation, as numpy and percentile_cont compute it) of successful attempts.

    `providers` (those in the window, when the caller knows them already) saves a scan on SQLite.
    """
    columns = ["provider_id", "latency_n", "p50_ms", "p95_ms", "p99_ms"]
    where = [*_usage_where(f), _U.c.outcome == "success"]
    if conn.dialect.name == "postgresql":
        _roomy_postgres(conn)
        # The server sorts per group; nothing crosses the wire but three numbers per provider.
        stmt = (
            select(
                _U.c.provider_id,
                func.count(),
                *(func.percentile_cont(q / 100).within_group(_U.c.latency_ms) for q in PERCENTILES),
            )
            .where(*where)
            .group_by(_U.c.provider_id)
        )
        frame = fetch_frame(conn, stmt, columns)
    else:
        known = distinct_providers(conn, f) if providers is None else providers
        frame = _percentiles_from_values(conn, where, known, columns)
    frame["latency_n"] = frame["latency_n"].astype("int64")
    return frame


def _percentiles_from_values(
    conn: Connection, where: list[ColumnElement[bool]], providers: list[str], columns: list[str]
) -> pd.DataFrame:
    # SQLite has no percentile function: stream (provider code, latency) pairs into typed numpy arrays. The
    # provider is mapped to a small int in SQL because Python caches small ints, so no per-row string objects.
    check_dialect(conn.dialect.name)
    if not providers:
        return pd.DataFrame(columns=columns)
    code = case({p: i for i, p in enumerate(providers)}, value=_U.c.provider_id, else_=-1)
    stmt = select(code, _U.c.latency_ms).where(*where)
    chunks_code: list[np.ndarray] = []
    chunks_latency: list[np.ndarray] = []
    result = conn.execute(stmt)
    try:
        while part := result.cursor.fetchmany(_FETCH_CHUNK):
            block = np.array(part, dtype=np.float64).reshape(-1, 2)
            chunks_code.append(block[:, 0].astype(np.int32))
            chunks_latency.append(block[:, 1])
    finally:
        result.close()
    codes = np.concatenate(chunks_code) if chunks_code else np.empty(0, np.int32)
    latencies = np.concatenate(chunks_latency) if chunks_latency else np.empty(0)
    rows = []
    for i, provider in enumerate(providers):
        values = latencies[codes == i]
        if values.size:
            rows.append([provider, values.size, *np.percentile(values, PERCENTILES)])
    return pd.DataFrame(rows, columns=columns)


def load_transitions(conn: Connection, f: ReportFilter) -> pd.DataFrame:
    """Each move after a failed attempt: (from provider, to provider, strategy) with counts and time lost.

    A task's attempt n (n > 1) is paired with its attempt n-1; if n-1 failed, the move is a failover when they
    ran on different providers, a rotation when on two subscriptions of the same provider, and a retry
    otherwise (`ledger.follows_failure`, `ledger.move_kind`: the same rule as the run summaries' counts).
    `lost_ms` is the failed attempts' latency. `inner` counts the moves whose earlier attempt is inside the
    window too: attempts minus `inner` is the number of distinct tasks with an attempt in the window.
    """
    cur, prev = _U.alias("cur"), _U.alias("prev")
    keys = [
        prev.c.provider_id.label("from_provider"),
        cur.c.provider_id.label("to_provider"),
        cur.c.strategy,
        prev.c.subscription.label("from_subscription"),
        cur.c.subscription.label("to_subscription"),
    ]
    inner = func.sum(case((prev.c.started_at >= f.window.since, 1), else_=0)).label("inner")
    stmt = (
        select(
            *keys,
            func.count().label("moves"),
            func.sum(prev.c.latency_ms).label("lost_ms"),
            inner,
            move_kind(prev, cur).label("kind"),
        )
        .select_from(cur.join(prev, follows_failure(prev, cur)))
        .where(cur.c.attempt > 1, *_usage_where(f, cur))
        .group_by(*keys)
    )
    columns = ["from_provider", "to_provider", "strategy", "from_subscription", "to_subscription"]
    frame = fetch_frame(conn, stmt, [*columns, "moves", "lost_ms", "inner", "kind"])
    frame["moves"] = frame["moves"].astype("int64")
    frame["inner"] = frame["inner"].astype("int64")
    frame["lost_ms"] = frame["lost_ms"].astype("float64")
    return frame


# The tasks' own rows, for the failures that left no attempt.
_TASKS = cast(Table, TaskRow.__table__)


def load_quota_failures(conn: Connection, f: ReportFilter) -> int:
    """Tasks that failed for quota in the window (ledger.quota_failures' rule): their last attempt's outcome is
    quota_exhausted or rate_limited (and no later attempt), or they made none because every provider was skipped
    for quota or a rate limit (their error says so). Runs pruned from the ledger no longer count."""
    cur, later = _U.alias("cur"), _U.alias("later")
    no_later = ~exists().where(
        later.c.run_id == cur.c.run_id, later.c.task_id == cur.c.task_id, later.c.attempt > cur.c.attempt
    )
    last = select(func.count()).where(cur.c.outcome.in_(sorted(QUOTA_OUTCOMES)), no_later, *_usage_where(f, cur))
    refused = select(func.count()).where(
        _TASKS.c.status == "failed",
        _TASKS.c.error.like(QUOTA_REFUSED + "%"),
        _TASKS.c.updated_at >= f.window.since,
        _TASKS.c.updated_at < f.window.until,
        *([_TASKS.c.team == f.team] if f.team is not None else []),
    )
    return int(conn.execute(last).scalar_one()) + int(conn.execute(refused).scalar_one())


def load_cache_savings(conn: Connection, f: ReportFilter) -> pd.DataFrame:
    """Per team (None: no team): tasks served from the response cache in the window (`cache_hits`), and what
    their answers cost when they were made (`cache_savings_usd`, what the hits saved), pruned ones included
    (from their kept totals). Teams without a hit have no row."""
    team = _U.c.team.label("team")
    stmt = (
        select(team, func.count().label("hits"), func.coalesce(func.sum(_U.c.cache_saved_usd), 0.0).label("saved"))
        .where(_U.c.cache_hit.is_(True), *_usage_where(f))
        .group_by(_U.c.team)
    )
    # Pruned days (`switchboard db prune`), whole days starting inside the window, as `_kept_totals` counts them.
    clauses = [
        _T.c.provider_id == CACHE_PROVIDER,
        _T.c.day >= _day_at_or_after(f.window.since),
        _T.c.day < _day_at_or_after(f.window.until),
    ]
    if f.team is not None:
        clauses.append(_T.c.team == f.team)
    kept = (
        select(
            _T.c.team.label("team"),
            func.coalesce(func.sum(_T.c.attempts), 0).label("hits"),
            func.coalesce(func.sum(_T.c.cache_saved_usd), 0.0).label("saved"),
        )
        .where(*clauses)
        .group_by(_T.c.team)
    )
    by_team: dict[str | None, tuple[int, float]] = {}
    for rows in (conn.execute(stmt), conn.execute(kept)):
        for name, hits, saved in rows:
            before = by_team.get(name, (0, 0.0))
            by_team[name] = (before[0] + int(hits or 0), before[1] + float(saved or 0.0))
    return pd.DataFrame(
        {
            "team": pd.Series(list(by_team), dtype="object"),
            "cache_hits": pd.Series([v[0] for v in by_team.values()], dtype="int64"),
            "cache_savings_usd": pd.Series([v[1] for v in by_team.values()], dtype="float64"),
        }
    )


def load_events(conn: Connection, f: ReportFilter) -> pd.DataFrame:
    """Provider events in the window, plus each provider's last circuit event before it (its state at `since`).

    `from_state` is the circuit state a circuit event left (`unknown` for a breaker that a new run or process
    just created), taken from the event's detail; null for other events.
    """
    circuit = _E.c.kind.like("circuit.%")
    latest = (
        select(_E.c.provider_id, func.max(_E.c.at).label("at"))
        .where(_E.c.at < f.window.since, circuit)
        .group_by(_E.c.provider_id)
        .subquery()
    )
    columns = [_E.c.provider_id, _E.c.subscription, _E.c.kind, _E.c.at, _E.c.detail]
    before = (
        select(*columns, literal(True).label("before"))
        .join(latest, and_(latest.c.provider_id == _E.c.provider_id, latest.c.at == _E.c.at))
        .where(circuit)
    )
    inside = select(*columns, literal(False).label("before")).where(_E.c.at >= f.window.since, _E.c.at < f.window.until)
    rows = [
        (p, s, kind, at, _from_state(kind, detail), was_before)
        for p, s, kind, at, detail, was_before in [*conn.execute(before).all(), *conn.execute(inside).all()]
    ]
    frame = pd.DataFrame(rows, columns=["provider_id", "subscription", "kind", "at", "from_state", "before"])
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    frame["before"] = frame["before"].astype(bool)
    return frame.sort_values(["at", "provider_id"], kind="stable").reset_index(drop=True)


def _from_state(kind: str, detail: Any) -> str | None:
    if not kind.startswith("circuit.") or not isinstance(detail, dict):
        return None
    value = detail.get("from")
    return None if value is None else str(value)


def load_usage_buckets(
    conn: Connection, start: datetime, end: datetime, unit: Unit, providers: list[str]
) -> pd.DataFrame:
    """Requests, tokens (input+output+cache, as limits count them) and cost per provider, subscription and bucket.

    Quota windows ignore the report's team filter: a limit is shared by everyone using the subscription.
    """
    columns = ["bucket", "provider_id", "subscription", "requests", "tokens", "cost"]
    if not providers or start >= end:
        return _typed_buckets(pd.DataFrame(columns=columns), unit)
    bucket = utc_bucket(_U.c.started_at, unit, conn.dialect.name).label("bucket")
    tokens = _U.c.tokens_input + _U.c.tokens_output + _U.c.tokens_cache_read + _U.c.tokens_cache_write
    keys = [bucket, _U.c.provider_id, _U.c.subscription]
    stmt = (
        select(*keys, func.count(), func.sum(tokens), func.sum(_U.c.cost_usd))
        .where(_U.c.started_at >= start, _U.c.started_at < end, or_(*(_U.c.provider_id == p for p in providers)))
        .group_by(*keys)
    )
    return _typed_buckets(fetch_frame(conn, stmt, columns), unit)


def _typed_buckets(frame: pd.DataFrame, unit: Unit) -> pd.DataFrame:
    frame["bucket"] = parse_bucket(frame["bucket"], unit)
    frame["requests"] = frame["requests"].astype("int64")
    frame["tokens"] = frame["tokens"].astype("float64")
    frame["cost"] = frame["cost"].astype("float64")
    return frame


def ledger_start(conn: Connection) -> datetime | None:
    """When the ledger's first attempt started (indexed, so cheap): how far back usage could be observed."""
    value = conn.execute(select(func.min(_U.c.started_at))).scalar()
    return value


def first_seen_since(start: datetime | None, until: datetime, span: timedelta) -> float:
    """Seconds of history a window of `span` ending at `until` could hold (at least a minute)."""
    if start is None:
        return span.total_seconds()
    return max(60.0, min(span.total_seconds(), (until - start).total_seconds()))
