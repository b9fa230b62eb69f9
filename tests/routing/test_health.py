"""Cached health feeds routing: checked in the background, never per decision; unhealthy providers are skipped."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from providers import (
    AITask,
    ExecutionContext,
    HealthStatus,
    LocalMockProvider,
    ProviderHealth,
    ProviderResponse,
    utc_now,
)
from routing.router import Router
from tests.routing.engine_kit import FakeClock, engine, tasks


class Probed(LocalMockProvider):
    """A mock whose health probe answers what the test says, counts its probes and can be held mid-probe."""

    verdict = HealthStatus.HEALTHY
    detail = ""
    probes = 0
    hold: asyncio.Event | None = None

    async def _probe(self) -> ProviderHealth:
        type(self).probes += 1
        if self.hold is not None:
            await self.hold.wait()
        return ProviderHealth(status=self.verdict, checked_at=utc_now(), detail=self.detail)


def _probed(**attrs: object) -> type[Probed]:
    """A fresh Probed subclass, so class-level counters do not leak between tests."""
    return type("ProbedMock", (Probed,), {"probes": 0, **attrs})


def _router(kind: type[Probed], ttl_s: float = 30.0, clock: FakeClock | None = None) -> Router:
    router = engine(
        {"main": {"priority": 1, "health_ttl_s": ttl_s}, "spare": {"priority": 2}},
        clock,
        kinds={"main": kind},
        health_checks=True,
    )
    assert router.health is not None
    router.health.min_interval_s = 0.01
    return router


async def _until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


async def test_an_unhealthy_provider_is_skipped_with_the_checks_detail_and_never_probed_per_decision() -> None:
    kind = _probed(verdict=HealthStatus.UNHEALTHY, detail="HTTP 503 from /v1/models")
    router = _router(kind)
    assert router.health is not None
    await router.health.check_now()
    results = [await router.route(t) for t in tasks(20)]
    assert all(r.provider_id == "spare" for r in results)
    assert results[-1].decision.skipped["main"] == "unhealthy: HTTP 503 from /v1/models"
    assert kind.probes == 1  # twenty decisions, one check (cached for health_ttl_s)


async def test_checks_start_with_routing_without_holding_up_the_first_decisions() -> None:
    kind = _probed(verdict=HealthStatus.UNHEALTHY, detail="down", hold=asyncio.Event())
    router = _router(kind)
    first = await router.route(tasks(1)[0])  # starts the monitor beside it
    assert first.provider_id == "main"
    await _until(lambda: kind.probes == 1)  # the check is running (held) ...
    meanwhile = await router.route(tasks(1, prefix="meanwhile")[0])
    assert meanwhile.provider_id == "main"  # ... and decisions do not wait for it
    assert kind.hold is not None
    kind.hold.set()
    await _until(lambda: router.state("main").health.status is HealthStatus.UNHEALTHY)
    later = await router.route(tasks(1, prefix="later")[0])
    assert later.provider_id == "spare" and later.decision.skipped["main"] == "unhealthy: down"


async def test_a_fresh_check_after_the_ttl_brings_a_provider_back() -> None:
    kind = _probed(verdict=HealthStatus.UNHEALTHY, detail="down")
    clock = FakeClock()
    router = _router(kind, ttl_s=0.05, clock=clock)
    await router.route(tasks(1)[0])
    await _until(lambda: router.state("main").health.status is HealthStatus.UNHEALTHY)
    kind.verdict = HealthStatus.HEALTHY
    clock.now += 1.0  # the provider's own cache (on its clock) has expired too

    def recovered() -> bool:
        return router.state("main").health.status is HealthStatus.HEALTHY

    await _until(recovered)
    assert kind.probes >= 2
    assert (await router.route(tasks(1, prefix="back")[0])).provider_id == "main"


class Answering(LocalMockProvider):
    """A mock whose calls finish only when the test lets them (a call in flight across a health check)."""

    release: asyncio.Event

    async def execute_task(self, task: AITask, context: ExecutionContext) -> ProviderResponse:
        await self.release.wait()
        return await super().execute_task(task, context)


async def test_a_successful_call_overrides_an_unhealthy_check() -> None:
    kind = type("Answering", (Answering,), {"release": asyncio.Event()})
    router = engine({"main": {"priority": 1}, "spare": {"priority": 2}}, kinds={"main": kind})
    in_flight = asyncio.create_task(router.route(tasks(1)[0]))
    await _until(lambda: router.state("main").gate.in_use == 1)
    health = ProviderHealth(status=HealthStatus.UNHEALTHY, checked_at=utc_now(), detail="probe timed out")
    router.state("main").health.observe(health, next_due=float("inf"))
    assert (await router.route(tasks(1, prefix="meanwhile")[0])).provider_id == "spare"
    kind.release.set()
    assert (await in_flight).provider_id == "main"
    assert (await router.route(tasks(1, prefix="after")[0])).provider_id == "main"


async def test_the_monitor_stops_once_the_providers_are_closed() -> None:
    router = _router(_probed(), ttl_s=0.05)
    await router.route(tasks(1)[0])
    assert router.health is not None and router.health.running
    await router.registry.aclose()
    await _until(lambda: router.health is not None and not router.health.running)
