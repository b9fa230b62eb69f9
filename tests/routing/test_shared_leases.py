"""Leases: a process reserves for the calls it expects soon and hands them out without asking the store, yet the
limits hold exactly across processes, spare comes back, and each call counts in the bucket it was made in."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ledger import Ledger, LimitCheck, LimitStore, ReservationAsk, sliding
from providers import AITask
from routing.config import SwitchboardConfig, parse_config
from routing.registry import ProviderRegistry
from routing.router import RoutedResult, Router, RunInfo
from routing.shared import LEASE_S, SharedLimits, Ticket


class Process:
    """One routing process: its own store object (and owner) over the shared database."""

    def __init__(self, config: SwitchboardConfig, ledger: Ledger, owner: str) -> None:
        self.shared = SharedLimits(LimitStore(ledger.engine, owner=owner), refresh_s=0.05)
        self.router = Router(
            ProviderRegistry.from_configs(config.providers), config, shared=self.shared, health_checks=False
        )

    async def route(self, task_id: str) -> RoutedResult:
        task = AITask(id=task_id, type="code_review", prompt="p", max_output_tokens=40)
        return await self.router.route(task, RunInfo(run_id="r"))

    async def close(self) -> None:
        await self.router.registry.aclose()
        self.shared.close()


def _limited(tmp_path: Path, requests_per_hour: int) -> SwitchboardConfig:
    doc: dict[str, Any] = {
        "reserve_for_critical": 0,
        "providers": {
            "limited": {
                "type": "local_mock",
                "latency_ms": 0,
                "priority": 1,
                "limits": {"requests_per_hour": requests_per_hour},
            },
            "backup": {"type": "local_mock", "latency_ms": 0, "priority": 2},
        },
    }
    return parse_config(doc, str(tmp_path / "providers.yaml"))


async def test_calls_one_after_another_take_leases_not_a_store_transaction_each(tmp_path: Path, ledger: Ledger) -> None:
    process = Process(_limited(tmp_path, 10_000), ledger, "p0")
    for i in range(200):
        assert (await process.route(f"t{i}")).provider_id == "limited"
    # The pace of the calls sets the spare: most calls never wait for the store.
    assert process.shared.calls_from_leases >= 150, process.shared.transactions
    assert process.shared.transactions <= 50
    await process.close()
    store = LimitStore(ledger.engine, owner="reader")
    assert store.in_flight() == 0  # every lease settled at close
    assert store.usage("provider:limited", sliding(3600))[0] == 200  # each call counted once, as it was made


async def test_a_limit_holds_exactly_across_processes_that_lease(tmp_path: Path, ledger: Ledger) -> None:
    config = _limited(tmp_path, 60)
    processes = [Process(config, ledger, f"p{i}") for i in range(3)]

    async def stream(process: Process, n: int) -> list[RoutedResult]:
        return [await process.route(f"{id(process)}-{i}") for i in range(n)]

    results = [r for rs in await asyncio.gather(*(stream(p, 40) for p in processes)) for r in rs]
    served = [r.provider_id for r in results]
    # Spare held by one process's lease counts in the store (never more than 60), and comes back when that
    # process cannot use it (exactly 60: nothing is lost to a lease sitting idle).
    assert served.count("limited") == 60, served.count("limited")
    assert served.count("backup") == 60
    for process in processes:
        await process.close()


async def test_a_spare_a_process_does_not_use_comes_back_within_a_lease_time(tmp_path: Path, ledger: Ledger) -> None:
    config = _limited(tmp_path, 400)
    first, second = Process(config, ledger, "p0"), Process(config, ledger, "p1")
    for i in range(100):  # fast enough that its leases hold spare
        await first.route(f"a{i}")
    store = LimitStore(ledger.engine, owner="reader")
    requests, _, _, reserved, _, _ = store.usage("provider:limited", sliding(3600))
    assert requests + reserved > 100  # it holds spare now
    await asyncio.sleep(LEASE_S + 0.3)  # its lease ended; it keeps running, idle
    requests, _, _, reserved, _, _ = store.usage("provider:limited", sliding(3600))
    assert (requests, reserved) == (100, 0)
    results = [await second.route(f"b{i}") for i in range(300)]
    assert [r.provider_id for r in results].count("limited") == 300
    await first.close()
    await second.close()


async def test_a_lease_is_not_used_past_the_bucket_it_was_granted_in(ledger: Ledger) -> None:
    now = [1_000_000.7]  # late in a one-second bucket (the buckets of a minute's window): it ends before the lease
    store = LimitStore(ledger.engine, owner="p0", clock=lambda: now[0])
    shared = SharedLimits(store)
    check = LimitCheck("provider:x", "requests_per_minute", "requests", sliding(60), 1000)
    ask = ReservationAsk((check,), requests=1, tokens=0, cost=0, ttl_s=60)
    tickets = []
    for _ in range(30):  # the pace grows the spare
        ticket = await shared.reserve(ask)
        assert isinstance(ticket, Ticket)
        tickets.append(ticket)
    assert shared.calls_from_leases > 0
    asked = shared.transactions
    now[0] += 0.35  # the next bucket, within the lease's time: a call now must count there, so it asks the store
    ticket = await shared.reserve(ask)
    assert isinstance(ticket, Ticket)
    assert shared.transactions == asked + 1
    assert ticket.lease.reservation.rows == (("provider:x", 1, 1_000_001),)
    for t in [*tickets, ticket]:
        shared.settle(t, requests=1, tokens=0, cost=0)
    shared.close()
    assert store.usage("provider:x", sliding(60))[0] == 31
    assert store.in_flight() == 0


async def test_a_lease_gives_its_spare_back_when_it_ends_while_its_calls_are_still_out(ledger: Ledger) -> None:
    store = LimitStore(ledger.engine, owner="p0")
    shared = SharedLimits(store)
    check = LimitCheck("provider:x", "requests_per_hour", "requests", sliding(3600), 1000)
    ask = ReservationAsk((check,), requests=1, tokens=0, cost=0, ttl_s=600)
    tickets = [await shared.reserve(ask) for _ in range(40)]
    assert all(isinstance(t, Ticket) for t in tickets)
    for ticket in tickets[:-1]:
        shared.settle(ticket, requests=1, tokens=0, cost=0)  # type: ignore[arg-type]
    assert store.usage("provider:x", sliding(3600))[3] > 1  # the last lease holds spare beside its call
    await asyncio.sleep(LEASE_S + 0.3)  # it ended; one call of it is still out (a slow provider)
    requests, _, _, reserved, _, _ = store.usage("provider:x", sliding(3600))
    # Its calls stay counted (reserved until the last of them settles); its spare is free for every process.
    assert requests + reserved == 40
    shared.settle(tickets[-1], requests=1, tokens=0, cost=0)  # type: ignore[arg-type]
    shared.close()
    assert store.usage("provider:x", sliding(3600))[:4] == (40, 0, 0, 0)


async def test_an_ask_cancelled_before_its_answer_counts_nothing(ledger: Ledger) -> None:
    store = LimitStore(ledger.engine, owner="p0")
    shared = SharedLimits(store)
    check = LimitCheck("provider:x", "requests_per_hour", "requests", sliding(3600), 1000)
    ask = ReservationAsk((check,), requests=1, tokens=0, cost=0, ttl_s=600)
    asking = asyncio.ensure_future(shared.reserve(ask))
    await asyncio.sleep(0)  # queued for the store
    asking.cancel()
    await asyncio.sleep(0.3)  # the store answered meanwhile
    shared.close()
    assert store.in_flight() == 0
    assert store.usage("provider:x", sliding(3600))[:4] == (0, 0, 0, 0)


async def test_once_the_store_fails_no_call_goes_on_a_lease_either(ledger: Ledger) -> None:
    from sqlalchemy import text

    from routing.shared import StoreUnavailable

    store = LimitStore(ledger.engine, owner="p0")
    shared = SharedLimits(store)
    limited = LimitCheck("provider:x", "requests_per_hour", "requests", sliding(3600), 1000)
    ask = ReservationAsk((limited,), requests=1, tokens=0, cost=0, ttl_s=600)
    for _ in range(20):  # the pace grows a spare
        ticket = await shared.reserve(ask)
        assert isinstance(ticket, Ticket)
        shared.settle(ticket, requests=1, tokens=0, cost=0)
    with ledger.engine.begin() as conn:
        conn.execute(text("DROP TABLE shared_lock"))  # the store is lost
    other = ReservationAsk((LimitCheck("provider:y", "requests_per_hour", "requests", sliding(3600), 9),), 1, 0, 0, 600)
    assert isinstance(await shared.reserve(other), StoreUnavailable)
    # The lease for x had room, but the process now knows the store is down: refused, not served from it.
    assert isinstance(await shared.reserve(ask), StoreUnavailable)
    shared.close(timeout=1)
