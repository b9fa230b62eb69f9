"""The shared limit store on SQLite and PostgreSQL: reserve, settle, expire, windows on the store's clock."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Engine, text

from ledger import (
    FOREVER,
    UTC_DAY,
    LimitCheck,
    LimitRefusal,
    LimitStore,
    Release,
    Reservation,
    ReservationAsk,
    Settlement,
    sliding,
)

# 2026-12-06 23:59:00 UTC on the store's clock.
T0 = 1_796_601_540.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def _requests(limit: float, span_s: float = 3600, scope: str = "provider:m") -> LimitCheck:
    return LimitCheck(scope, "requests_per_hour", "requests", sliding(span_s), limit)


def _day_budget(cap: float) -> LimitCheck:
    return LimitCheck("budget:day", "day", "cost", UTC_DAY, cap)


def _ask(*checks: LimitCheck, cost: float = 0.0, tokens: float = 0.0, ttl_s: float = 60.0) -> ReservationAsk:
    return ReservationAsk(tuple(checks), requests=1, tokens=tokens, cost=cost, ttl_s=ttl_s)


def test_a_request_limit_grants_up_to_it_and_refuses_past_it(engine: Engine) -> None:
    store = LimitStore(engine, owner="test", clock=Clock())
    results = store.reserve([_ask(_requests(3)) for _ in range(5)])
    assert [isinstance(r, Reservation) for r in results] == [True, True, True, False, False]
    refusal = results[3]
    assert isinstance(refusal, LimitRefusal) and (refusal.settled, refusal.reserved, refusal.total) == (0, 3, 4)
    assert refusal.held_by_reservations  # nothing settled yet: calls in flight hold the room
    # Another process (another store on the same database) sees them too.
    other = LimitStore(engine, owner="other", clock=Clock())
    assert isinstance(other.reserve([_ask(_requests(3))])[0], LimitRefusal)


def test_settling_replaces_the_estimate_by_the_real_usage(engine: Engine) -> None:
    store = LimitStore(engine, owner="test", clock=Clock())
    budget = _day_budget(1.0)
    granted = store.reserve([_ask(budget, cost=0.4), _ask(budget, cost=0.4)])
    assert all(isinstance(r, Reservation) for r in granted)
    assert isinstance(store.reserve([_ask(budget, cost=0.4)])[0], LimitRefusal)  # 1.2 with both in flight
    store.settle([Settlement(r, 1, 0, 0.1) for r in granted if isinstance(r, Reservation)])  # type: ignore[misc]
    assert store.usage("budget:day", UTC_DAY) == (2, 0, pytest.approx(0.2), 0, 0, 0)
    assert isinstance(store.reserve([_ask(budget, cost=0.4)])[0], Reservation)  # 0.2 + 0.4
    assert store.in_flight() == 1


def test_real_spend_reaches_a_budget_that_no_estimate_reaches(engine: Engine) -> None:
    store = LimitStore(engine, owner="test", clock=Clock())
    budget = _day_budget(0.2)
    calls = 0
    while True:
        granted = store.reserve([_ask(budget, cost=0.041)])[0]
        if not isinstance(granted, Reservation):
            break
        store.settle([Settlement(granted, 1, 29, 0.029)])
        calls += 1
    assert calls == 6  # 6 x 0.029 = 0.174; a seventh's estimate would reach 0.215
    assert not granted.held_by_reservations


def test_a_dead_process_reservation_expires_charged_at_its_estimate(engine: Engine) -> None:
    clock = Clock()
    dead = LimitStore(engine, owner="dead", clock=clock)
    budget = _day_budget(1.0)
    reservation = dead.reserve([_ask(budget, cost=0.5, tokens=100, ttl_s=30)])[0]
    assert isinstance(reservation, Reservation)
    clock.now += 29
    assert LimitStore(engine, owner="alive", clock=clock).expire() == 0
    clock.now += 2
    assert LimitStore(engine, owner="alive", clock=clock).expire() == 1
    # Charged as spent (the call may have been paid), no longer in flight, never refunded.
    assert dead.usage("budget:day", UTC_DAY) == (1, 100, 0.5, 0, 0, 0)
    # If the process was only slow, its late settlement adds what it used beyond the estimate, nothing twice.
    dead.settle([Settlement(reservation, 1, 50, 0.2)])
    assert dead.usage("budget:day", UTC_DAY) == (1, 100, 0.5, 0, 0, 0)
    dead.settle([Settlement(reservation, 1, 150, 0.7)])
    assert dead.usage("budget:day", UTC_DAY) == (1, 150, pytest.approx(0.7), 0, 0, 0)


def test_the_day_budget_starts_again_at_utc_midnight_on_the_store_clock(engine: Engine) -> None:
    clock = Clock()
    store = LimitStore(engine, owner="test", clock=clock)
    budget = _day_budget(1.0)
    first = store.reserve([_ask(budget, cost=0.9)])[0]
    assert isinstance(first, Reservation)
    store.settle([Settlement(first, 1, 0, 0.9)])
    assert isinstance(store.reserve([_ask(budget, cost=0.2)])[0], LimitRefusal)
    clock.now += 59  # 23:59:59
    assert isinstance(store.reserve([_ask(budget, cost=0.2)])[0], LimitRefusal)
    clock.now += 1  # midnight
    assert isinstance(store.reserve([_ask(budget, cost=0.2)])[0], Reservation)


def test_a_sliding_window_forgets_calls_once_they_are_a_span_old(engine: Engine) -> None:
    clock = Clock()
    store = LimitStore(engine, owner="test", clock=clock)
    check = _requests(2, span_s=60)
    assert all(isinstance(r, Reservation) for r in store.reserve([_ask(check), _ask(check)]))
    clock.now += 59
    assert isinstance(store.reserve([_ask(check)])[0], LimitRefusal)
    clock.now += 2.5  # the calls are 61.5 s old: past the window, and the extra bucket counted
    assert isinstance(store.reserve([_ask(check)])[0], Reservation)


def test_a_run_budget_never_resets(engine: Engine) -> None:
    clock = Clock()
    store = LimitStore(engine, owner="test", clock=clock)
    run = LimitCheck("budget:run:r1", "run", "cost", FOREVER, 1.0)
    granted = store.reserve([_ask(run, cost=0.9)])[0]
    assert isinstance(granted, Reservation)
    clock.now += 10 * 86_400
    assert isinstance(store.reserve([_ask(run, cost=0.2)])[0], LimitRefusal)


def test_an_ask_is_granted_only_when_every_limit_fits_and_charges_each_scope_once(engine: Engine) -> None:
    store = LimitStore(engine, owner="test", clock=Clock())
    per_minute = LimitCheck("provider:m", "requests_per_minute", "requests", sliding(60), 10)
    tokens_per_minute = LimitCheck("provider:m", "tokens_per_minute", "tokens", sliding(60), 100)
    granted = store.reserve([_ask(per_minute, tokens_per_minute, _requests(5), tokens=40)] * 3)
    assert [type(r).__name__ for r in granted] == ["Reservation", "Reservation", "LimitRefusal"]
    refusal = granted[2]
    assert isinstance(refusal, LimitRefusal) and refusal.check.name == "tokens_per_minute"
    assert store.usage("provider:m", sliding(60)) == (0, 0, 0, 2, 80, 0)
    assert store.usage("provider:m", sliding(3600)) == (0, 0, 0, 2, 80, 0)


def test_concurrent_reservations_from_many_threads_never_pass_the_limit(engine: Engine) -> None:
    stores = [LimitStore(engine, owner=f"w{i}") for i in range(4)]
    check = _requests(50)
    granted: list[int] = []

    def work(store: LimitStore) -> None:
        for _ in range(10):
            results = store.reserve([_ask(check) for _ in range(2)])
            granted.append(sum(isinstance(r, Reservation) for r in results))

    threads = [threading.Thread(target=work, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(granted) == 50
    assert stores[0].usage("provider:m", sliding(3600))[3] == 50


def test_blocks_and_circuits_are_seen_by_every_process_until_they_end(engine: Engine) -> None:
    clock = Clock()
    one, two = LimitStore(engine, owner="one", clock=clock), LimitStore(engine, owner="two", clock=clock)
    one.set_block("provider:m", 600, "rate_limited")
    two.set_block("provider:m", 60, "shorter")  # a shorter block does not shorten it
    one.set_circuit_open("m", 30)
    state = two.state()
    assert state.blocks == {"provider:m": (T0 + 600, "rate_limited")} and state.circuits == {"m": T0 + 30}
    clock.now += 31
    assert two.state().circuits == {}
    two.reset(["provider:m"], "m")
    assert one.state().blocks == {}


def test_pruning_drops_only_buckets_no_window_reaches(engine: Engine) -> None:
    clock = Clock()
    store = LimitStore(engine, owner="test", clock=clock)
    run = LimitCheck("budget:run:r1", "run", "cost", FOREVER, 10.0)
    day = _day_budget(10.0)
    assert all(isinstance(r, Reservation) for r in store.reserve([_ask(_requests(5), day, run, cost=1.0)]))
    clock.now += 2 * 86_400 + 3600
    store.prune()
    assert store.usage("provider:m", sliding(3600))[3] == 0
    assert store.usage("budget:run:r1", FOREVER)[5] == 1.0  # a run's budget is kept
    with engine.connect() as conn:
        assert conn.execute(text("select count(*) from shared_counters")).scalar_one() == 1


def test_a_lease_gets_the_calls_that_fit_and_spare_only_out_of_plenty(engine: Engine) -> None:
    clock = Clock()
    store = LimitStore(engine, owner="test", clock=clock)
    budget = _day_budget(1.0)

    def lease(units: int, spare: int) -> Reservation | LimitRefusal:
        checks = (_requests(20), budget)
        ask = ReservationAsk(checks, requests=1, tokens=10, cost=0.01, ttl_s=60, units=units, spare=spare)
        return store.reserve([ask])[0]

    first = lease(2, 100)  # 2 needed, 18 left: a quarter of them spare
    assert isinstance(first, Reservation) and (first.units, first.requests, first.tokens) == (6, 6, 60)
    assert first.cost == pytest.approx(0.06)
    second = lease(20, 0)  # only 14 fit: as many as fit, no more
    assert isinstance(second, Reservation) and second.units == 14
    refused = lease(1, 5)
    assert isinstance(refused, LimitRefusal) and refused.check.name == "requests_per_hour"
    # The first lease covered 3 calls and ends with one still out: its 3 unused go back at once, the rest stays.
    store.transact((), (), [Release(first, 3, 30, 0.03)])
    assert store.usage("provider:m", sliding(3600))[3] == 17
    shrunk = Reservation(first.id, first.rows, 3, 30, 0.03, units=3)
    store.settle([Settlement(shrunk, 3, 24, 0.024)])
    assert store.usage("provider:m", sliding(3600))[:4] == (3, 24, pytest.approx(0.024), 14)
    # A lease whose process died expires charged at all it held; a late release gives nothing back.
    clock.now += 61
    assert store.expire() == 1
    store.transact((), (), [Release(second, 10, 100, 0.1)])
    assert store.usage("provider:m", sliding(3600))[:4] == (17, 164, pytest.approx(0.164), 0)


def test_limits_count_a_call_at_its_list_price_and_budgets_at_its_charge(engine: Engine) -> None:
    store = LimitStore(engine, owner="test", clock=Clock())
    login_limit = LimitCheck("subscription:claude/login", "cost_usd_per_day", "cost", sliding(86_400), 1.0)
    granted = store.reserve([_ask(login_limit, _day_budget(1.0), cost=0.0)])[0]
    assert isinstance(granted, Reservation)
    # A subscription login's call: charged nothing at the margin, $0.30 of its allowance at list price.
    store.settle([Settlement(granted, 1, 100, 0.0, list_cost=0.3)])
    assert store.usage("subscription:claude/login", sliding(86_400))[2] == pytest.approx(0.3)
    assert store.usage("budget:day", UTC_DAY)[2] == 0.0


def test_a_lease_at_list_price_releases_and_expires_by_scope(engine: Engine) -> None:
    clock = Clock()
    store = LimitStore(engine, owner="test", clock=clock)
    login_limit = LimitCheck("subscription:claude/login", "cost_usd_per_day", "cost", sliding(86_400), 10.0)
    checks = (login_limit, _day_budget(0.1))
    ask = ReservationAsk(checks, requests=1, tokens=0, cost=0.0, ttl_s=60, units=1, spare=3, list_cost=0.3)
    lease = store.reserve([ask])[0]
    # Its list price counts against the login's limit, its charge (nothing) against the day's $0.10.
    assert isinstance(lease, Reservation) and lease.units == 4 and lease.list_cost == pytest.approx(1.2)
    assert store.usage("subscription:claude/login", sliding(86_400))[5] == pytest.approx(1.2)
    assert store.usage("budget:day", UTC_DAY)[5] == 0.0
    store.transact((), (), [Release(lease, 2, 0, 0.0, list_cost=0.6)])  # two calls' worth it never used
    assert store.usage("subscription:claude/login", sliding(86_400))[5] == pytest.approx(0.6)
    clock.now += 61  # its process died: charged at what it still held, in each scope
    assert store.expire() == 1
    assert store.usage("subscription:claude/login", sliding(86_400))[2:6:3] == (pytest.approx(0.6), 0)
    assert store.usage("budget:day", UTC_DAY)[2] == 0.0
