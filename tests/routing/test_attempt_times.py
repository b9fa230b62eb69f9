"""Attempts are stamped with the router's wall clock (`Router(wall_clock=...)`), the real clock unless a caller
runs the engine on virtual time: a week routed in seconds by the outcome benchmark is recorded at its virtual
times, so `switchboard simulate` replays it spread over the week rather than as one burst."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from providers import AITask, LocalMockConfig, LocalMockProvider
from routing import ProviderRegistry, Router, RunInfo
from tests.routing.engine_kit import FakeClock, config

MONDAY = datetime(2026, 1, 5, tzinfo=UTC)


async def test_attempts_carry_the_routers_wall_clock() -> None:
    clock = FakeClock()
    registry = ProviderRegistry()
    # Fails its first call (failure_rate draws per attempt): two attempts, each stamped.
    registry.add_instance(LocalMockProvider("flaky", LocalMockConfig(latency_ms=0, priority=1, failure_rate=1.0)))
    registry.add_instance(LocalMockProvider("steady", LocalMockConfig(latency_ms=0, priority=2), clock=clock))
    virtual = {"s": 0.0}

    def wall() -> datetime:
        virtual["s"] += 60.0  # every reading a minute later, so each stamp is told apart
        return MONDAY + timedelta(seconds=virtual["s"])

    router = Router(registry, config(strategy="priority_based"), clock=clock, wall_clock=wall, health_checks=False)
    result = await router.route(AITask(id="t", type="code_review", prompt="p"), RunInfo(run_id="r"))
    assert [a.provider_id for a in result.attempts] == ["flaky", "steady"]
    stamps = [t for a in result.attempts for t in (a.started_at, a.finished_at)]
    assert all(MONDAY < t < MONDAY + timedelta(days=1) for t in stamps), stamps
    assert stamps == sorted(stamps) and len(set(stamps)) == 4
