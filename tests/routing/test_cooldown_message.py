"""Resuming within `cooldown_s` of an outage: tasks refused by open circuits say when to run again."""

from __future__ import annotations

from providers import LocalMockConfig
from routing.registry import ProviderRegistry
from routing.router import Router
from tests.routing.engine_kit import tasks


async def test_a_task_refused_by_open_circuits_says_when_the_first_lets_calls_through() -> None:
    registry = ProviderRegistry.from_configs(
        {"a": LocalMockConfig(latency_ms=0, priority=1), "b": LocalMockConfig(latency_ms=0, priority=2)}
    )
    now = [1000.0]
    router = Router(registry, health_checks=False, clock=lambda: now[0])
    # The last calls of both failed: a = 10 s ago, b = 25 s ago, with the default cooldown of 30 s.
    router.restore_circuit("a", [(True, 10.0)] * 5)
    router.restore_circuit("b", [(True, 25.0)] * 5)
    result = await router.route(tasks(1)[0])
    assert result.status == "failed" and result.attempts == []
    assert "a: circuit_open; b: circuit_open" in (result.error or "")
    assert "lets calls through again in 5 s, at " in (result.error or "") and "UTC: run it again then" in result.error
    now[0] += 6  # b's cooldown is over: the task goes
    assert (await router.route(tasks(1, prefix="later")[0])).status == "completed"
    await registry.aclose()


async def test_no_hint_when_something_else_refused_the_task() -> None:
    registry = ProviderRegistry.from_configs({"a": LocalMockConfig(latency_ms=0, capabilities=["bug_fix"])})
    router = Router(registry, health_checks=False)
    result = await router.route(tasks(1)[0])
    assert result.error == "no provider can take task type 'code_review' now (a: capability)"
    await registry.aclose()
