"""Circuit time and the health trend across runs: each run starts its breakers `unknown` and records no close.

The events below are what two short `switchboard run`s recorded on 2026-11-30 (the audit's ledger), plus one
provider that really failed and recovered.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, insert

from analytics import ReportSettings, ReportWindow, build_report
from analytics.health import circuit_summary, health_trend
from ledger import AttemptRecord, Ledger, ProviderEvent

WEEK = ReportWindow(datetime(2026, 11, 30, tzinfo=UTC), datetime(2026, 12, 7, tzinfo=UTC))


def at(hh: int, mm: int, ss: float) -> datetime:
    return datetime(2026, 11, 30, hh, mm, tzinfo=UTC) + timedelta(seconds=ss)


# provider, kind, from, to, at
EVENTS = [
    ("steady", "circuit.closed", "unknown", "closed", at(4, 10, 12.103934)),  # run 1 starts
    ("flaky", "circuit.opened", "unknown", "open", at(4, 10, 12.211175)),
    ("steady", "circuit.closed", "unknown", "closed", at(4, 10, 36.497749)),  # run 2 starts
    ("flaky", "circuit.opened", "unknown", "open", at(4, 10, 36.636857)),
    # A real outage: open from closed, half-open after the cooldown, closed by a good probe.
    ("shaky", "circuit.closed", "unknown", "closed", at(5, 0, 0)),
    ("shaky", "circuit.opened", "closed", "open", at(5, 0, 10)),
    ("shaky", "circuit.half_open", "open", "half_open", at(5, 0, 40)),
    ("shaky", "circuit.closed", "half_open", "closed", at(5, 0, 41)),
]


def _fill(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(ProviderEvent),
            [
                {"provider_id": p, "subscription": None, "kind": k, "detail": {"from": f, "to": t}, "at": when}
                for p, k, f, t, when in EVENTS
            ],
        )


def test_open_time_ends_at_the_next_run_or_the_cooldown_not_at_the_end_of_the_period(engine: Engine) -> None:
    _fill(engine)
    from analytics.load import ReportFilter, load_events

    with engine.connect() as conn:
        events = load_events(conn, ReportFilter(WEEK))
    circuit = {r.provider_id: r for r in circuit_summary(events, WEEK, cooldown_s=30).itertuples()}
    # Run 1's flaky spell ends when run 2's new breaker opens, 24.425682 s later (within the 30 s cooldown);
    # run 2's spell has no later event: the cooldown, 30 s. Not 589,787 s to the end of the week.
    assert circuit["flaky"].circuit_opens == 2
    assert circuit["flaky"].circuit_open_s == pytest.approx(24.425682 + 30.0)
    # shaky: opened 05:00:10, half-open 05:00:40.
    assert (circuit["shaky"].circuit_opens, circuit["shaky"].circuit_open_s) == (1, pytest.approx(30.0))
    assert circuit["steady"].circuit_open_s == 0.0
    # With a 10 s cooldown every spell is cut at 10 s.
    short = {r.provider_id: r for r in circuit_summary(events, WEEK, cooldown_s=10).itertuples()}
    assert short["flaky"].circuit_open_s == pytest.approx(20.0)
    assert short["shaky"].circuit_open_s == pytest.approx(10.0)


def test_a_new_breakers_first_close_is_not_a_recovery(engine: Engine) -> None:
    _fill(engine)
    from analytics.load import ReportFilter, load_events

    with engine.connect() as conn:
        trend = health_trend(load_events(conn, ReportFilter(WEEK)))
    rows = {r["provider_id"]: r for r in trend.to_dict(orient="records")}
    assert set(rows) == {"flaky", "shaky"}  # steady only ever started (unknown -> closed): nothing to show
    assert (rows["flaky"]["circuit_opened"], rows["flaky"]["circuit_closed"]) == (2, 0)
    assert (rows["shaky"]["circuit_opened"], rows["shaky"]["circuit_closed"]) == (1, 1)


def test_report_uses_the_providers_files_cooldown(engine: Engine) -> None:
    _fill(engine)
    Ledger(engine).record_attempts(
        AttemptRecord(
            run_id="r", task_id=f"t-{p}", provider_id=p, task_type="review", attempt=1, outcome="success",
            started_at=at(6, 0, 0), finished_at=at(6, 0, 0),
        )
        for p in ("flaky", "shaky")
    )  # fmt: skip
    report = build_report(engine, WEEK, settings=ReportSettings(circuit_cooldown_s=600))
    perf = {r["provider_id"]: r for r in report.to_json()["performance"]}
    # flaky: run 1's spell is still cut by run 2's open (24.425682 s); run 2's lasts the 600 s cooldown.
    assert perf["flaky"]["circuit_open_s"] == pytest.approx(624.425682)
    assert perf["flaky"]["circuit_opens"] == 2
    assert perf["shaky"]["circuit_open_s"] == pytest.approx(30.0)  # its half-open event came first


def test_a_spell_open_before_the_window_counts_from_since() -> None:
    import pandas as pd

    since = WEEK.since
    events = pd.DataFrame(
        [
            ("p", None, "circuit.opened", pd.Timestamp(since - timedelta(seconds=10)), "closed", True),
            ("p", None, "circuit.half_open", pd.Timestamp(since + timedelta(seconds=5)), "open", False),
        ],
        columns=["provider_id", "subscription", "kind", "at", "from_state", "before"],
    )
    (row,) = circuit_summary(events, WEEK, cooldown_s=30).itertuples()
    assert (row.circuit_opens, row.circuit_open_s) == (0, 5.0)  # 10 s before since, 5 s inside


def test_postgresql_reads_the_same_circuit_history(engine: Engine, pg_engine: Engine) -> None:
    from analytics.load import ReportFilter, load_events

    frames = []
    for each in (engine, pg_engine):
        _fill(each)
        with each.connect() as conn:
            events = load_events(conn, ReportFilter(WEEK))
        summary = circuit_summary(events, WEEK).to_dict(orient="records")
        frames.append((summary, health_trend(events).to_dict(orient="records")))
    assert frames[0] == frames[1]
    assert frames[0][0][0]["circuit_open_s"] == pytest.approx(54.425682)  # flaky, as on SQLite above
