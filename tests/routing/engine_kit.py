"""Helpers for routing-engine tests: a fake clock, an engine over local mock providers, tasks, call counts."""

from __future__ import annotations

from typing import Any

from providers import AITask, LocalMockConfig, LocalMockProvider
from routing.config import SwitchboardConfig
from routing.events import RoutingEvent
from routing.registry import ProviderRegistry
from routing.router import RoutedResult, Router


class FakeClock:
    """Monotonic time that moves only when a test moves it (breaker cooldowns, quota windows, cool-offs)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def config(**settings: Any) -> SwitchboardConfig:
    return SwitchboardConfig.model_validate({"providers": {"_": {"type": "local_mock"}}, **settings})


def engine(
    providers: dict[str, dict[str, Any]],
    clock: FakeClock | None = None,
    events: list[RoutingEvent] | None = None,
    *,
    kinds: dict[str, type[LocalMockProvider]] | None = None,
    health_checks: bool = False,
    **settings: Any,
) -> Router:
    """A router over local mocks (zero latency unless given) sharing one fake clock with the engine."""
    clock = clock or FakeClock()
    registry = ProviderRegistry()
    for name, values in providers.items():
        cls = (kinds or {}).get(name, LocalMockProvider)
        registry.add_instance(cls(name, LocalMockConfig(**{"latency_ms": 0, **values}), clock=clock))
    observer = events.append if events is not None else None
    return Router(registry, config(**settings), clock=clock, observer=observer, health_checks=health_checks)


def tasks(n: int, task_type: str = "code_review", prefix: str = "t", **fields: Any) -> list[AITask]:
    return [AITask(id=f"{prefix}{i}", type=task_type, prompt=f"task {prefix}{i}", **fields) for i in range(n)]


def calls(results: list[RoutedResult], provider_id: str) -> int:
    return sum(1 for r in results for a in r.attempts if a.provider_id == provider_id)


def fail_from_now_on(router: Router, provider_id: str, fail_with: str = "unavailable") -> None:
    """The provider, healthy so far, starts failing every call (as a real outage would)."""
    provider = router.state(provider_id).provider
    provider.config = provider.config.model_copy(update={"failure_rate": 1.0, "fail_with": fail_with})  # type: ignore[misc]
