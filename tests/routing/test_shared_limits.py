"""Routers sharing limits through the ledger's database: each router here stands for a process (its own store
connection, owner and state), as `switchboard run`, Prefect and Dask workers and the API each build one."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine

from ledger import Ledger, LimitStore
from providers import AITask
from routing.config import SwitchboardConfig, parse_config
from routing.events import BUDGET_EXHAUSTED, QUOTA_BLOCKED, RoutingEvent
from routing.registry import ProviderRegistry
from routing.router import RoutedResult, Router, RunInfo
from routing.shared import SharedLimits

PRICES = {"*": {"input": 1000.0, "output": 1000.0}}  # estimate $0.041, actual $0.029 (test_money_guards)


def _config(tmp_path: Path, doc: dict[str, Any]) -> SwitchboardConfig:
    return parse_config(doc, str(tmp_path / "providers.yaml"))


class Process:
    """One routing process: its own store object (and owner) over the shared database."""

    def __init__(self, config: SwitchboardConfig, store: LimitStore, events: list[RoutingEvent] | None = None):
        self.shared = SharedLimits(store, refresh_s=0.05)
        observer = events.append if events is not None else None
        self.router = Router(
            ProviderRegistry.from_configs(config.providers),
            config,
            shared=self.shared,
            observer=observer,
            health_checks=False,
        )

    async def route(self, task_id: str, run_id: str = "r", type_: str = "code_review", **fields: Any) -> RoutedResult:
        task = AITask(id=task_id, type=type_, prompt="p", max_output_tokens=40, **fields)
        return await self.router.route(task, RunInfo(run_id=run_id, team=fields.get("team")))

    async def close(self) -> None:
        await self.router.registry.aclose()
        self.shared.close()


def _processes(config: SwitchboardConfig, ledger: Ledger, n: int = 2) -> list[Process]:
    return [Process(config, LimitStore(ledger.engine, owner=f"p{i}")) for i in range(n)]


async def test_a_request_limit_holds_across_processes(tmp_path: Path, ledger: Ledger) -> None:
    config = _config(
        tmp_path,
        {
            "reserve_for_critical": 0,
            "providers": {
                "limited": {"type": "local_mock", "latency_ms": 5, "priority": 1, "limits": {"requests_per_hour": 5}},
                "backup": {"type": "local_mock", "latency_ms": 0, "priority": 2},
            },
        },
    )
    one, two = _processes(config, ledger)
    results = await asyncio.gather(*(p.route(f"{i}-{j}") for j in range(6) for i, p in enumerate((one, two))))
    served = [r.provider_id for r in results]
    assert served.count("limited") == 5 and served.count("backup") == 7
    moved = next(r for r in results if r.provider_id == "backup")
    assert moved.decision.skipped["limited"].startswith("quota: requests_per_hour")
    await one.close()
    await two.close()


async def test_a_call_held_back_by_another_processes_estimate_waits_for_it_to_settle(
    tmp_path: Path, ledger: Ledger
) -> None:
    # Two estimates ($0.082) do not fit $0.075, but one real call and one estimate ($0.07) do.
    config = _config(
        tmp_path,
        {
            "budget": {"max_cost_usd_per_day": 0.075},
            "providers": {"m": {"type": "local_mock", "latency_ms": 150, "prices": PRICES}},
        },
    )
    one, two = _processes(config, ledger)
    first, second = await asyncio.gather(one.route("a"), two.route("b"))
    assert (first.status, second.status) == ("completed", "completed")
    third = await one.route("c")
    assert third.outcome == "budget_exceeded"
    assert third.decision.skipped["m"].startswith("budget: day would reach $0.0990 of $0.0750")
    await one.close()
    await two.close()


async def test_a_team_budget_charges_the_team_across_processes_and_no_other(tmp_path: Path, ledger: Ledger) -> None:
    config = _config(
        tmp_path,
        {
            "teams": {"platform": {"max_cost_usd_per_day": 0.1}},
            "providers": {"m": {"type": "local_mock", "latency_ms": 0, "prices": PRICES}},
        },
    )
    events: list[RoutingEvent] = []
    one = Process(config, LimitStore(ledger.engine, owner="p0"), events)
    two = Process(config, LimitStore(ledger.engine, owner="p1"))
    results = [await p.route(f"t{i}-{n}", team="platform") for i in range(3) for n, p in enumerate((one, two))]
    done = [r for r in results if r.status == "completed"]
    assert len(done) == 3  # $0.087 spent; a fourth's estimate would reach $0.128
    refused = next(r for r in results if r.status != "completed")
    assert refused.outcome == "budget_exceeded"
    assert str(refused.decision.skipped["m"]).startswith("budget: team platform would reach $0.1280 of $0.1000")
    exhausted = [e for e in events if e.kind == BUDGET_EXHAUSTED]
    assert [(e.detail["scope"], e.detail["team"]) for e in exhausted] == [("team", "platform")]
    # Another team, and work of no team, are not charged to platform.
    assert (await one.route("other", team="data")).status == "completed"
    assert (await two.route("none")).status == "completed"
    await one.close()
    await two.close()


async def test_a_long_retry_after_seen_by_one_process_keeps_every_process_away(tmp_path: Path, ledger: Ledger) -> None:
    config = _config(
        tmp_path,
        {
            "providers": {
                "limited": {
                    "type": "local_mock",
                    "latency_ms": 0,
                    "priority": 1,
                    "failure_rate": 1.0,
                    "fail_with": "rate_limited",
                    "retry_after_s": 600,
                    "capabilities": ["code_review"],
                },
                "backup": {"type": "local_mock", "latency_ms": 0, "priority": 2},
            }
        },
    )
    events: list[RoutingEvent] = []
    one = Process(config, LimitStore(ledger.engine, owner="p0"), events)
    two = Process(config, LimitStore(ledger.engine, owner="p1"))
    await two.route("warm-up", type_="summarization")  # up and watching; never called `limited`
    assert [a.provider_id for a in (await one.route("a")).attempts] == ["limited", "backup"]
    assert [e.kind for e in events if e.kind == QUOTA_BLOCKED] == [QUOTA_BLOCKED]
    await asyncio.sleep(0.3)  # a few refreshes
    later = await two.route("b")
    assert [a.provider_id for a in later.attempts] == ["backup"]
    assert later.decision.skipped["limited"].startswith("quota: rate_limited (resets in")
    await one.close()
    await two.close()


async def test_a_circuit_opened_by_one_process_is_open_in_every_process(tmp_path: Path, ledger: Ledger) -> None:
    config = _config(
        tmp_path,
        {
            "circuit": {"failure_threshold": 2, "cooldown_s": 60},
            "providers": {
                "down": {
                    "type": "local_mock",
                    "latency_ms": 0,
                    "priority": 1,
                    "failure_rate": 1.0,
                    "capabilities": ["code_review"],
                },
                "up": {"type": "local_mock", "latency_ms": 0, "priority": 2},
            },
        },
    )
    one, two = _processes(config, ledger)
    await two.route("warm-up", type_="summarization")  # up and watching; never called `down`
    assert two.router.state("down").breaker.state == "unknown"
    for i in range(3):
        await one.route(f"a{i}")
    assert one.router.state("down").breaker.state == "open"
    await asyncio.sleep(0.3)
    assert two.router.state("down").breaker.state == "open"
    later = await two.route("b")
    assert [a.provider_id for a in later.attempts] == ["up"] and later.decision.skipped["down"] == "circuit_open"
    await one.close()
    await two.close()


async def test_when_the_store_cannot_be_reached_calls_are_refused_naming_it(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        {
            "budget": {"max_cost_usd_per_day": 1.0},
            "providers": {"m": {"type": "local_mock", "latency_ms": 0, "prices": PRICES}},
        },
    )
    unreachable = create_engine("postgresql+psycopg://postgres@127.0.0.1:9/switchboard")
    process = Process(config, LimitStore(unreachable, owner="p0"))
    result = await process.route("a")
    assert result.status == "failed" and result.attempts == []
    reason = result.decision.skipped["m"]
    assert str(reason).startswith("the shared limits store (the ledger at postgresql+psycopg://postgres@127.0.0.1:9/")
    assert "is unavailable: " in str(reason)
    assert "shared limits store" in (result.error or "")
    await process.close()
    unreachable.dispose()


async def test_without_limits_the_store_is_never_asked(tmp_path: Path) -> None:
    config = _config(tmp_path, {"providers": {"m": {"type": "local_mock", "latency_ms": 0}}})
    unreachable = create_engine("postgresql+psycopg://postgres@127.0.0.1:9/switchboard")
    process = Process(config, LimitStore(unreachable, owner="p0"))
    assert (await process.route("a")).status == "completed"
    await process.close()
    unreachable.dispose()


async def test_a_reset_by_hand_clears_blocks_and_windows_in_every_process(tmp_path: Path, ledger: Ledger) -> None:
    from ledger import RESET_EVENT
    from routing.reset import reset_everywhere

    config = _config(
        tmp_path,
        {
            "reserve_for_critical": 0,
            "providers": {
                "limited": {
                    "type": "local_mock",
                    "latency_ms": 0,
                    "priority": 1,
                    "capabilities": ["code_review"],
                    "limits": {"requests_per_hour": 2},
                },
                "backup": {"type": "local_mock", "latency_ms": 0, "priority": 2},
            },
        },
    )
    one, two = _processes(config, ledger)
    await two.route("warm-up", type_="summarization")
    two.router.state("limited").quota.block_until(two.router.now() + 600, "rate_limited")  # as if it saw one
    for i in range(2):
        assert (await one.route(f"a{i}")).provider_id == "limited"
    assert (await one.route("a2")).provider_id == "backup"  # the window is full, for every process
    await asyncio.sleep(0.2)  # settled (a reset keeps the reservations of calls still in flight)
    reset_everywhere(ledger, "p9", "limited", (), by="ops@host", reason="new quota")
    await asyncio.sleep(0.3)
    assert (await one.route("b1")).provider_id == "limited"
    b2 = await two.route("b2")
    assert b2.provider_id == "limited", b2.decision.skipped  # its own block is gone too
    [event] = ledger.events_since(datetime.now(UTC) - timedelta(minutes=1), [RESET_EVENT])
    assert (event.provider_id, event.detail) == ("limited", {"by_hand": True, "by": "ops@host", "reason": "new quota"})
    await one.close()
    await two.close()


async def test_a_process_started_after_a_reset_does_not_restore_what_came_before_it(
    tmp_path: Path, ledger: Ledger
) -> None:
    from ledger import AttemptRecord, NewTask
    from routing.events import QUOTA_BLOCKED
    from routing.reset import reset_everywhere
    from routing.restore import restore_router_state

    config = _config(
        tmp_path,
        {"providers": {"m": {"type": "local_mock", "latency_ms": 0, "limits": {"requests_per_hour": 2}}}},
    )
    run_id, _ = ledger.start_or_resume_run(
        batch_name="b",
        batch_hash="b",
        team=None,
        strategy="priority_based",
        tasks=[NewTask(task_id="t", task_type="code_review", priority="critical")],
    )
    at = datetime.now(UTC) - timedelta(minutes=5)
    ledger.record_attempts(
        [
            AttemptRecord(
                run_id=run_id,
                task_id="t",
                provider_id="m",
                task_type="code_review",
                attempt=n,
                outcome="success",
                started_at=at,
                finished_at=at,
            )
            for n in (1, 2)
        ]
    )
    reset_at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    ledger.record_provider_event("m", QUOTA_BLOCKED, {"reason": "quota_exhausted", "reset_at": reset_at})

    def restarted() -> Router:
        router = Router(ProviderRegistry.from_configs(config.providers), config, health_checks=False)
        restore_router_state(router, ledger, run_id)
        return router

    before = restarted()
    assert before.state("m").quota.refusal(1, 0.0, critical=True) is not None  # blocked, and the window is full
    before.state("m").quota.clear_block()
    assert "requests_per_hour 2/2" in str(before.state("m").quota.refusal(1, 0.0, critical=True))
    reset_everywhere(ledger, "ops@host", "m", ())
    after = restarted()
    assert after.state("m").quota.refusal(1, 0.0, critical=True) is None
    for router in (before, after):
        await router.registry.aclose()


# Long enough for every process to see the circuit open on a loaded machine before it half-opens.
PROBE_COOLDOWN_S = 2.0


async def test_one_probe_for_every_process_when_a_shared_circuit_half_opens(tmp_path: Path, ledger: Ledger) -> None:
    config = _config(
        tmp_path,
        {
            "circuit": {"failure_threshold": 2, "cooldown_s": PROBE_COOLDOWN_S, "probe_in_flight": 1},
            "providers": {
                "down": {
                    "type": "local_mock",
                    "latency_ms": 200,
                    "priority": 1,
                    "failure_rate": 1.0,
                    "capabilities": ["code_review"],
                },
                "up": {"type": "local_mock", "latency_ms": 0, "priority": 2},
            },
        },
    )
    processes = _processes(config, ledger, 3)
    for p in processes:
        await p.route(f"warm-up-{id(p)}", type_="summarization")  # up and watching; never called `down`
    for i in range(3):
        await processes[0].route(f"a{i}")
    opened = time.monotonic()  # the circuit opened during a1, in the first process
    # The others learn it from the store (refreshed every 0.5 s), each holding it open as long as the first does;
    # on a loaded machine that takes longer than one refresh, so wait for it, well inside the cooldown.
    deadline = opened + PROBE_COOLDOWN_S - 0.5
    while not all(p.router.state("down").breaker.state == "open" for p in processes) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert all(p.router.state("down").breaker.state == "open" for p in processes)
    # The cooldown is over in every process: each would send its own probe.
    await asyncio.sleep(opened + PROBE_COOLDOWN_S + 0.2 - time.monotonic())
    results = await asyncio.gather(*(p.route(f"b{n}-{i}") for n, p in enumerate(processes) for i in range(2)))
    probes = [a for r in results for a in r.attempts if a.provider_id == "down"]
    assert len(probes) == 1, [r.decision.skipped for r in results]
    assert all(r.status == "completed" for r in results)  # the others went to `up` at once
    for p in processes:
        await p.close()


async def test_a_probe_that_succeeds_closes_the_shared_circuit_for_the_others(tmp_path: Path, ledger: Ledger) -> None:
    config = _config(tmp_path, {"providers": {"m": {"type": "local_mock", "latency_ms": 0}}})
    one, two = _processes(config, ledger)
    await one.route("warm-up")
    await two.route("warm-up-2")
    store = LimitStore(ledger.engine, owner="reader")
    assert one.shared is not None
    assert await one.shared.claim_probe("m", 60) == 0.0  # as one would when its circuit half-opens
    assert await two.shared.claim_probe("m", 60) > 50  # the other waits for it
    assert "m" in store.state().circuits
    one.router.state("m").breaker.hold_open(0.01)
    await asyncio.sleep(0.05)
    assert (await one.route("probe")).provider_id == "m"  # its half-open circuit's probe succeeds: closed
    await asyncio.sleep(0.3)
    assert "m" not in store.state().circuits
    assert await two.shared.claim_probe("m", 60) == 0.0
    await one.close()
    await two.close()
