"""The routing engine as a whole: breakers, quota, reserve, budgets, affinity, critical tasks, events, restarts."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

import pytest

from ledger import AttemptRecord, Ledger, NewTask
from providers import AITask, LocalMockConfig, LocalMockProvider, Priority, QuotaSignal
from routing.config import SwitchboardConfig
from routing.events import QUOTA_BLOCKED, QUOTA_FORECAST_CROSSED, RoutingEvent
from routing.registry import ProviderRegistry
from routing.restore import restore_router_state
from routing.router import Router, RunInfo


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _config(**settings: object) -> SwitchboardConfig:
    return SwitchboardConfig.model_validate({"providers": {"_": {"type": "local_mock"}}, **settings})


def _engine(
    providers: dict[str, dict], clock: FakeClock | None = None, events: list | None = None, **settings: object
) -> Router:
    clock = clock or FakeClock()
    registry = ProviderRegistry()
    for name, values in providers.items():
        registry.add_instance(LocalMockProvider(name, LocalMockConfig(**{"latency_ms": 0, **values}), clock=clock))
    return Router(registry, _config(**settings), clock=clock, observer=events.append if events is not None else None)


def _tasks(n: int, task_type: str = "code_review", **fields: object) -> list[AITask]:
    return [AITask(id=f"t{i}", type=task_type, prompt=f"task {i}", **fields) for i in range(n)]


def _calls(results: list, provider_id: str) -> int:
    return sum(1 for r in results for a in r.attempts if a.provider_id == provider_id)


async def test_always_failing_provider_gets_at_most_threshold_plus_probes() -> None:
    router = _engine({"dead": {"priority": 1, "failure_rate": 1.0}, "ok": {"priority": 2}})
    results = await router.route_many(_tasks(30))
    assert all(r.status == "completed" and r.provider_id == "ok" for r in results)
    # failure_threshold 5; while unknown only probe_in_flight (2) calls are admitted at once
    assert _calls(results, "dead") <= 5
    assert router.state("dead").breaker.state == "open"
    skipped = [r.decision.skipped.get("dead") for r in results if "dead" not in [a.provider_id for a in r.attempts]]
    assert skipped and set(skipped) <= {"circuit_open", "circuit_probing"}


async def test_open_circuit_half_opens_after_cooldown_and_closes_on_success() -> None:
    clock = FakeClock()
    events: list[RoutingEvent] = []
    router = _engine({"flaky": {"priority": 1, "failure_rate": 1.0}, "ok": {"priority": 2}}, clock, events)
    for task in _tasks(6):
        await router.route(task)
    assert router.state("flaky").breaker.state == "open"
    # the provider recovers; after the cooldown one probe goes through and closes the circuit
    router.state("flaky").provider.config = LocalMockConfig(latency_ms=0, priority=1)  # type: ignore[misc]
    clock.now += 31
    result = await router.route(AITask(id="probe", type="code_review", prompt="p"))
    assert result.provider_id == "flaky"
    assert router.state("flaky").breaker.state == "closed"
    assert [e.kind for e in events if e.provider_id == "flaky"][-3:] == [
        "circuit.opened",
        "circuit.half_open",
        "circuit.closed",
    ]


async def test_requests_per_hour_limit_is_never_exceeded() -> None:
    router = _engine({"limited": {"priority": 1, "limits": {"requests_per_hour": 5}}, "spare": {"priority": 2}})
    results = await router.route_many(_tasks(30, priority=Priority.CRITICAL))
    assert _calls(results, "limited") <= 5
    assert all(r.status == "completed" for r in results)


async def test_reserve_is_kept_for_critical_tasks() -> None:
    router = _engine({"limited": {"priority": 1, "limits": {"requests_per_hour": 10}}})
    normal = [await router.route(t) for t in _tasks(12)]
    assert [r.status for r in normal] == ["completed"] * 9 + ["failed"] * 3  # 10% of the limit stays reserved
    assert "reserve kept for critical" in normal[-1].decision.skipped["limited"]
    # Every provider out for quota: a quota failure (ledger.quota_failures), counted apart in the run summary.
    assert normal[-1].outcome == "quota_exhausted" and "requests_per_hour 9/10" in normal[-1].error
    assert normal[-1].error.startswith("every provider is out of quota or rate limited now")
    critical = await router.route(AITask(id="urgent", type="code_review", prompt="p", priority=Priority.CRITICAL))
    assert critical.provider_id == "limited"
    after = await router.route(AITask(id="late", type="code_review", prompt="p", priority=Priority.CRITICAL))
    assert after.status == "failed"  # the whole limit is used now


async def test_mock_quota_is_called_at_most_once_past_it_then_left_alone_until_reset() -> None:
    clock = FakeClock()
    events: list[RoutingEvent] = []
    router = _engine(
        {"quota": {"priority": 1, "quota_requests": 3, "quota_reset_s": 60}, "spare": {"priority": 2}}, clock, events
    )
    results = [await router.route(t) for t in _tasks(20)]
    assert _calls(results, "quota") == 4  # 3 served, the 4th learned the quota was gone
    assert [a.outcome for r in results for a in r.attempts if a.provider_id == "quota"][-1] == "quota_exhausted"
    assert results[-1].decision.skipped["quota"].startswith("quota: quota_exhausted")
    assert any(e.kind == QUOTA_BLOCKED for e in events)
    clock.now += 61  # the reset passes: the provider is tried again
    again = await router.route(AITask(id="later", type="code_review", prompt="p"))
    assert again.provider_id == "quota"


async def test_pre_limit_switching_moves_away_before_the_limit() -> None:
    events: list[RoutingEvent] = []
    router = _engine(
        {"main": {"priority": 1, "limits": {"requests_per_minute": 100}}, "other": {"priority": 2}},
        events=events,
        switch_threshold=0.5,
        reserve_for_critical=0.0,
    )
    results = [await router.route(t) for t in _tasks(60)]
    assert _calls(results, "main") == 50  # from 50% of the limit on, "other" is preferred
    assert results[-1].decision.order == ("other", "main")
    crossed = [e for e in events if e.kind == QUOTA_FORECAST_CROSSED]
    assert len(crossed) == 1 and crossed[0].provider_id == "main"


async def test_rate_limit_headers_feed_quota_state() -> None:
    router = _engine({"api": {"priority": 1}, "other": {"priority": 2}})
    api = router.state("api").provider
    api.report_quota(QuotaSignal(provider_id="api", remaining=5, limit=100, utilization=0.95))
    assert (await router.route(_tasks(1)[0])).provider_id == "other"
    reset = datetime.now(UTC) + timedelta(seconds=30)
    api.report_quota(QuotaSignal(provider_id="api", status="rejected", reset_at=reset))
    result = await router.route(_tasks(1)[0])
    assert result.decision.skipped["api"].startswith("quota:")


async def test_budget_stops_a_task_whose_estimate_would_break_it() -> None:
    events: list[RoutingEvent] = []
    router = _engine(
        {"pricey": {"prices": {"*": {"input": 1000.0, "output": 1000.0}}}},
        events=events,
        budget={"max_cost_usd_per_run": 0.5},
    )
    result = await router.route(AITask(id="big", type="code_review", prompt="x" * 400), RunInfo(run_id="r1"))
    assert result.status == "failed" and result.outcome == "budget_exceeded" and result.attempts == []
    assert "budget" in result.error
    assert [e.kind for e in events] == ["budget.exhausted"]


async def test_a_task_refused_by_budgets_and_by_something_else_is_unavailable_not_over_budget() -> None:
    """Only a task that budgets alone kept from every provider fails `budget_exceeded` (and reports it)."""
    events: list[RoutingEvent] = []
    router = _engine(
        {
            "pricey": {"prices": {"*": {"input": 1000.0, "output": 1000.0}}},
            "fixer": {"capabilities": ["bug_fix"]},
        },
        events=events,
        budget={"max_cost_usd_per_run": 0.5},
    )
    result = await router.route(AITask(id="big", type="code_review", prompt="x" * 400), RunInfo(run_id="r1"))
    assert result.outcome == "unavailable" and result.decision is not None
    assert result.decision.skipped == {"pricey": result.decision.skipped["pricey"], "fixer": "capability"}
    assert result.decision.skipped["pricey"].startswith("budget: run would reach $")
    assert events == []


@pytest.mark.parametrize(
    ("budget", "scope"), [({"max_cost_usd_per_run": 0.5}, "run"), ({"max_cost_usd_per_day": 0.5}, "day")]
)
async def test_the_budget_that_refused_is_the_one_reported(budget: dict[str, float], scope: str) -> None:
    events: list[RoutingEvent] = []
    router = _engine({"pricey": {"prices": {"*": {"input": 1000.0, "output": 1000.0}}}}, events=events, budget=budget)
    result = await router.route(AITask(id="big", type="code_review", prompt="x" * 400), RunInfo(run_id="r1"))
    assert result.decision is not None
    reached = re.fullmatch(
        rf"budget: {scope} would reach \$(\d+\.\d{{4}}) of \$0\.5000", result.decision.skipped["pricey"]
    )
    assert reached is not None and float(reached.group(1)) > 0.5
    assert [(e.kind, e.detail["scope"]) for e in events] == [("budget.exhausted", scope)]


async def test_affinity_sticks_while_eligible_and_moves_when_not() -> None:
    router = _engine({"a": {"priority": 1}, "b": {"priority": 2}}, strategy="round_robin")
    first = await router.route(
        AITask(id="1", type="code_review", prompt="p", affinity="repo"), RunInfo(strategy="round_robin")
    )
    for i in range(4):  # round robin alone would alternate
        task = AITask(id=f"n{i}", type="code_review", prompt="p", affinity="repo")
        assert (await router.route(task, RunInfo(strategy="round_robin"))).provider_id == first.provider_id
    # the sticky provider's circuit opens: the key moves, and the new choice sticks
    state = router.state(first.provider_id)
    for _ in range(5):
        state.breaker.begin()
        state.breaker.fail()
    moved = await router.route(
        AITask(id="m", type="code_review", prompt="p", affinity="repo"), RunInfo(strategy="round_robin")
    )
    assert moved.provider_id != first.provider_id
    assert router.affinity.get("repo") == moved.provider_id


async def test_critical_task_is_tried_on_every_capable_provider() -> None:
    providers = {f"p{i}": {"priority": i, "failure_rate": 1.0} for i in range(5)}
    providers["last"] = {"priority": 9}
    router = _engine(providers)
    normal = await router.route(AITask(id="n", type="code_review", prompt="p", max_attempts=3))
    assert normal.status == "failed" and len(normal.attempts) == 3
    critical = await router.route(
        AITask(id="c", type="code_review", prompt="p", max_attempts=3, priority=Priority.CRITICAL)
    )
    assert critical.status == "completed" and critical.provider_id == "last"


async def test_critical_tasks_jump_the_queue_when_slots_are_full() -> None:
    router = _engine({"one": {"max_concurrency": 1, "latency_ms": 20}})
    order: list[str] = []
    tasks = [*_tasks(4), AITask(id="urgent", type="code_review", prompt="u", priority=Priority.CRITICAL)]

    async def routed(task: AITask) -> None:
        await router.route(task)
        order.append(task.id)

    await asyncio.gather(*(routed(t) for t in tasks))
    assert order[0] == "t0" and order[1] == "urgent"


@pytest.mark.parametrize(
    ("fail_with", "calls_on_first", "moved_on"),
    [
        ("unavailable", 1, True),
        ("timeout", 1, True),
        ("authentication", 1, True),
        ("malformed_response", 1, True),
        ("quota_exhausted", 1, True),
        ("overloaded", 2, True),  # retried once with backoff, then failover
        ("bad_request", 1, False),
    ],
)
async def test_failover_rules_per_error_class(fail_with: str, calls_on_first: int, moved_on: bool) -> None:
    slept: list[float] = []

    async def no_sleep(seconds: float) -> None:
        slept.append(seconds)

    router = _engine({"first": {"priority": 1, "failure_rate": 1.0, "fail_with": fail_with}, "second": {"priority": 2}})
    router._sleep = no_sleep
    result = await router.route(_tasks(1)[0])
    assert _calls([result], "first") == calls_on_first
    assert (result.provider_id == "second") is moved_on
    assert len(slept) == calls_on_first - 1


async def test_quota_windows_and_blocks_survive_a_restart(sqlite_url: str) -> None:
    ledger = Ledger(url=sqlite_url)
    run_id, _ = ledger.start_or_resume_run(
        batch_name="b",
        batch_hash="h",
        team=None,
        strategy=None,
        tasks=[NewTask(task_id="t", task_type="code_review", priority="normal")],
    )
    now = datetime.now(UTC)
    ledger.record_attempts(
        AttemptRecord(
            run_id=run_id,
            task_id="t",
            provider_id="limited",
            task_type="code_review",
            attempt=i + 1,
            outcome="success",
            started_at=now - timedelta(minutes=10),
            finished_at=now - timedelta(minutes=10),
        )
        for i in range(5)
    )
    ledger.record_provider_event(
        "blocked", QUOTA_BLOCKED, {"reason": "quota_exhausted", "reset_at": (now + timedelta(hours=1)).isoformat()}
    )
    router = _engine(
        {
            "limited": {"priority": 1, "limits": {"requests_per_hour": 5}},
            "blocked": {"priority": 2},
            "spare": {"priority": 3},
        }
    )
    restore_router_state(router, ledger, run_id)
    result = await router.route(AITask(id="x", type="code_review", prompt="p", priority=Priority.CRITICAL))
    assert result.provider_id == "spare"
    assert result.decision.skipped["limited"].startswith("quota: requests_per_hour 5/5")
    assert result.decision.skipped["blocked"].startswith("quota: quota_exhausted")


async def test_a_critical_task_reaches_the_last_capable_provider_despite_same_provider_retries() -> None:
    async def no_sleep(seconds: float) -> None:
        return None

    providers = {f"p{i}": {"priority": i, "failure_rate": 1.0, "fail_with": "overloaded"} for i in range(5)}
    providers["last"] = {"priority": 9}
    router = _engine(providers)
    router._sleep = no_sleep
    critical = await router.route(
        AITask(id="c", type="code_review", prompt="p", max_attempts=3, priority=Priority.CRITICAL)
    )
    assert critical.status == "completed" and critical.provider_id == "last"
    assert [a.provider_id for a in critical.attempts] == ["p0", "p1", "p2", "p3", "p4", "last"]
    # a normal task still spends its attempts as before: one retry on the overloaded provider, then failover
    normal = await router.route(AITask(id="n", type="code_review", prompt="p", max_attempts=3))
    assert [a.provider_id for a in normal.attempts] == ["p0", "p0", "p1"]


@pytest.mark.parametrize(("fail_with", "observed"), [("bad_request", False), ("unavailable", True)])
async def test_only_the_providers_own_failures_lower_its_adaptive_score(fail_with: str, observed: bool) -> None:
    router = _engine({"p": {"priority": 1, "failure_rate": 1.0, "fail_with": fail_with}, "ok": {"priority": 2}})
    for task in _tasks(3):
        await router.route(task)
    score = router.adaptive.get("p", "code_review")
    assert (score is not None and score < router.adaptive.prior_score) is observed
    if not observed:
        assert score is None  # the caller's own mistake says nothing about the provider
