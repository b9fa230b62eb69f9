"""Admission under concurrency: tasks really in flight (mocks with latency), many routed at once.

Each call is admitted right before it starts: after waiting for a slot, on a retry and on failover, circuit,
health, quota and budget are checked again. Tasks whose only obstacle is a busy slot (concurrency, or the
probes of an unknown or half-open circuit) wait instead of failing.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest

from providers import AITask, ExecutionContext, LocalMockProvider, Priority, ProviderResponse
from routing.events import CIRCUIT_OPENED, RoutingEvent
from routing.router import RunInfo
from tests.routing.engine_kit import FakeClock, calls, engine, fail_from_now_on, tasks

LATENCY_MS = 5


class BuggyPlugin(LocalMockProvider):
    """A third-party provider with a bug: after a real wait it raises a plain KeyError."""

    async def execute_task(self, task: AITask, context: ExecutionContext) -> ProviderResponse:
        await asyncio.sleep(LATENCY_MS / 1000)
        raise KeyError("model")


class OddPlugin(LocalMockProvider):
    """A third-party provider that returns a dict instead of a ProviderResponse."""

    async def execute_task(self, task: AITask, context: ExecutionContext) -> ProviderResponse:
        return {"text": "not a ProviderResponse"}  # type: ignore[return-value]


# "one": every provider serialises its calls; "many": all 30 tasks are in flight at once.
CONCURRENCY = pytest.mark.parametrize("max_concurrency", [1, 50], ids=["one", "many"])


def _mock(priority: int, max_concurrency: int = 4, **values: Any) -> dict[str, Any]:
    return {"priority": priority, "latency_ms": LATENCY_MS, "max_concurrency": max_concurrency, **values}


def _served_everything(results: list) -> bool:
    return all(r.status == "completed" for r in results)


async def test_a_burst_on_a_fresh_engine_waits_for_the_probes_and_every_task_completes() -> None:
    router = engine({"a": _mock(1, latency_ms=10), "b": _mock(2, latency_ms=10)})
    results = await router.route_many(tasks(30))
    assert _served_everything(results), [r.error for r in results if r.status != "completed"][:3]
    assert not any("circuit_probing" in r.decision.skipped.values() for r in results)
    # While "a" was unknown, no more than probe_in_flight (2) calls ran before the first answer came back.
    on_a = sorted((a for r in results for a in r.attempts if a.provider_id == "a"), key=lambda a: a.started_at)
    first_answer = min(a.finished_at for a in on_a)
    assert len([a for a in on_a if a.started_at < first_answer]) <= 2


@CONCURRENCY
async def test_a_burst_sends_a_provider_dead_from_the_start_at_most_failure_threshold_calls(
    max_concurrency: int,
) -> None:
    router = engine({"dead": _mock(1, max_concurrency, failure_rate=1.0), "ok": _mock(2, max_concurrency)})
    results = await router.route_many(tasks(30))
    assert _served_everything(results)
    assert calls(results, "dead") <= 5  # failure_threshold; the other tasks waited for the probes' verdict
    assert router.state("dead").breaker.state == "open"
    waited_out = [r for r in results if calls([r], "dead") == 0]
    assert waited_out and {r.decision.skipped["dead"] for r in waited_out} == {"circuit_open"}


@CONCURRENCY
async def test_a_provider_dying_with_calls_in_flight_gets_no_new_call_once_its_circuit_opens(
    max_concurrency: int,
) -> None:
    opened: list[tuple[datetime, int]] = []
    events: list[RoutingEvent] = []
    router = engine({"a": _mock(1, max_concurrency), "b": _mock(2, max_concurrency)}, events=events)

    def observe(event: RoutingEvent) -> None:
        events.append(event)
        if event.kind == CIRCUIT_OPENED and event.provider_id == "a":
            # in_use still counts the call whose failure opened the circuit
            opened.append((datetime.now(event.at.tzinfo), router.state("a").gate.in_use - 1))

    router._observer = observe
    warm = await router.route(AITask(id="warm", type="code_review", prompt="w"))
    assert warm.provider_id == "a" and router.state("a").breaker.state == "closed"
    fail_from_now_on(router, "a")
    results = await router.route_many(tasks(30))
    assert _served_everything(results)
    assert len(opened) == 1
    opened_at, in_flight_then = opened[0]
    on_a = [a for r in results for a in r.attempts if a.provider_id == "a"]
    assert len(on_a) <= 5 + in_flight_then  # failure_threshold + calls already in flight when it opened
    assert all(a.started_at <= opened_at for a in on_a)
    if max_concurrency == 1:
        assert len(on_a) == 5


@CONCURRENCY
@pytest.mark.parametrize("warm", [False, True], ids=["fresh", "warm"])
async def test_requests_per_hour_is_never_exceeded_by_tasks_that_waited_for_a_slot(
    max_concurrency: int, warm: bool
) -> None:
    router = engine({"limited": _mock(1, max_concurrency, limits={"requests_per_hour": 5}), "spare": _mock(2)})
    before = []
    if warm:
        before.append(await router.route(AITask(id="w", type="code_review", prompt="w", priority=Priority.CRITICAL)))
    results = await router.route_many(tasks(30, priority=Priority.CRITICAL))
    assert calls(before + results, "limited") == 5
    assert _served_everything(results)
    refused = [r.decision.skipped["limited"] for r in results if "limited" in r.decision.skipped]
    assert refused and all(reason.startswith("quota: requests_per_hour 5/5") for reason in refused)


@CONCURRENCY
async def test_a_mock_quota_of_three_is_called_at_most_four_times_then_left_alone_until_its_reset(
    max_concurrency: int,
) -> None:
    clock = FakeClock()
    router = engine(
        {"quota": _mock(1, max_concurrency, quota_requests=3, quota_reset_s=60), "spare": _mock(2, max_concurrency)},
        clock,
    )
    results = await router.route_many(tasks(30))
    assert _served_everything(results)
    assert calls(results, "quota") <= 4
    later = await router.route_many(tasks(30, prefix="later"))
    assert calls(later, "quota") == 0
    clock.now += 61  # the reported reset passes
    again = await router.route(AITask(id="after-reset", type="code_review", prompt="p"))
    assert again.provider_id == "quota"


@CONCURRENCY
async def test_failover_checks_the_next_providers_quota_before_calling_it(max_concurrency: int) -> None:
    router = engine(
        {
            "dead": _mock(1, 50, failure_rate=1.0),
            "limited": _mock(2, max_concurrency, limits={"requests_per_hour": 5}),
            "spare": _mock(3, max_concurrency),
        }
    )
    results = await router.route_many(tasks(30, priority=Priority.CRITICAL))
    assert _served_everything(results)
    assert calls(results, "dead") <= 5
    assert calls(results, "limited") == 5


def _priced(max_concurrency: int) -> dict[str, Any]:
    # $1 per thousand tokens each way; a large max_output_tokens keeps every estimate above the actual cost.
    return _mock(1, max_concurrency, prices={"*": {"input": 1000.0, "output": 1000.0}})


@CONCURRENCY
async def test_the_run_budget_holds_with_many_tasks_in_flight(max_concurrency: int) -> None:
    batch = tasks(12, max_output_tokens=200)
    probe = engine({"p": _priced(max_concurrency)})
    actual = (await probe.route(batch[0])).cost_usd
    estimate = probe.state("p").provider.estimate_cost(batch[0]).cost_usd
    assert estimate > actual > 0
    cap = estimate + 4.5 * actual
    router = engine({"p": _priced(max_concurrency)}, budget={"max_cost_usd_per_run": cap})
    results = await router.route_many(batch, RunInfo(run_id="r1"))
    spent = sum(r.cost_usd for r in results)
    assert spent <= cap
    completed = [r for r in results if r.status == "completed"]
    refused = [r for r in results if r.status != "completed"]
    # A call starts while spent + reserved + its estimate fits: tasks waited for reservations to settle
    # rather than failing, so exactly as many ran as one at a time would have.
    assert len(completed) == int((cap - estimate) // actual) + 1
    assert refused and all(r.outcome == "budget_exceeded" and r.attempts == [] for r in refused)
    assert all("budget: run would reach" in (r.error or "") for r in refused)
    assert router.budget.calls_in_flight == 0


@CONCURRENCY
async def test_a_provider_raising_something_else_than_a_provider_error_is_recorded_released_and_counted(
    max_concurrency: int,
) -> None:
    router = engine(
        {"bug": _mock(1, max_concurrency), "ok": _mock(2, max_concurrency)},
        kinds={"bug": BuggyPlugin},
        budget={"max_cost_usd_per_run": 10},
    )
    results = await router.route_many(tasks(30))
    assert _served_everything(results)
    failed = [a for r in results for a in r.attempts if a.provider_id == "bug"]
    assert failed and {(a.outcome, a.error_type) for a in failed} == {("unavailable", "internal:KeyError")}
    assert len(failed) <= 5  # a health failure: the circuit opened after failure_threshold of them
    assert router.state("bug").breaker.state == "open"
    assert router.state("bug").breaker.in_flight == 0 and router.state("bug").gate.in_use == 0
    assert router.budget.calls_in_flight == 0


async def test_a_provider_returning_something_else_than_a_response_is_a_malformed_response() -> None:
    router = engine({"odd": _mock(1), "ok": _mock(2)}, kinds={"odd": OddPlugin})
    result = await router.route(tasks(1)[0])
    assert result.provider_id == "ok"
    assert [(a.outcome, a.error_type) for a in result.attempts] == [
        ("malformed_response", "not_a_response"),
        ("success", None),
    ]
    assert router.state("odd").gate.in_use == 0


async def test_a_half_open_circuit_lets_probes_through_and_the_rest_wait_for_the_verdict() -> None:
    clock = FakeClock()
    router = engine({"flaky": _mock(1, 50, failure_rate=1.0), "ok": _mock(2, 50)}, clock)
    await router.route_many(tasks(10, prefix="first"))
    assert router.state("flaky").breaker.state == "open"
    # the provider recovers; after the cooldown a burst finds it half-open
    provider = router.state("flaky").provider
    provider.config = provider.config.model_copy(update={"failure_rate": 0.0})  # type: ignore[misc]
    clock.now += 31
    results = await router.route_many(tasks(30, prefix="burst"))
    assert _served_everything(results)
    assert router.state("flaky").breaker.state == "closed"
    assert calls(results, "flaky") == 30  # the others waited for the probe, then went to the recovered provider


async def test_least_loaded_spreads_tasks_that_queue_while_every_provider_is_busy() -> None:
    router = engine({"a": _mock(1, 2), "b": _mock(2, 2)})
    results = await router.route_many(tasks(20), RunInfo(strategy="least_loaded"))
    assert _served_everything(results)
    assert calls(results, "a") == calls(results, "b") == 10  # not 18 queued behind "a" and 2 on "b"
