"""What-if replay: the recorded workload through the real routing engine, against simulated providers.

    workload   one item per recorded task (run, task id, type, team, priority, tokens, when it started),
               read from the ledger's attempts in the window
    providers  one `SimulatedProvider` per provider of the other config: latency, error rate and error mix
               from that provider's recorded attempts (or its config, for a mock never used); cost from the
               config's prices (the provider type's shipped prices), else the recorded cost per token
    engine     the real `Router` with the other config's strategy, limits, circuit and budgets, on a virtual
               clock set to each task's original start, so quota windows, cooldowns and forecasts happen
               when they would have; nothing sleeps and nothing is called

This module is where analytics (the recorded workload) meets routing (the engine), per DESIGN.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

from flows.summary import count_failovers
from ledger import AttemptRecord, Ledger
from providers import (
    ERRORS_BY_OUTCOME,
    AIProvider,
    AITask,
    ExecutionContext,
    HealthStatus,
    Priority,
    ProviderCapabilities,
    ProviderConfig,
    ProviderHealth,
    ProviderResponse,
    QuotaExhausted,
    TokenUsage,
)
from providers.base import utc_now
from routing.config import SwitchboardConfig
from routing.events import QUOTA_BLOCKED, QUOTA_FORECAST_CROSSED, RoutingEvent
from routing.registry import ProviderRegistry, provider_class
from routing.router import RoutedResult, Router, RunInfo

# Outcomes that are the engine's own decisions or interruptions, not provider behaviour to replay.
_NOT_PROVIDER_BEHAVIOUR = frozenset({"budget_exceeded", "cancelled", "bad_request"})


@dataclass(frozen=True, slots=True)
class WorkItem:
    run_id: str
    task_id: str
    task_type: str
    team: str | None
    priority: Priority
    usage: TokenUsage
    offset_s: float  # seconds after the window's start when the task first started


@dataclass
class ProviderProfile:
    """What the ledger says about one provider's behaviour."""

    latencies_ms: list[float] = field(default_factory=list)
    attempts: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    cost: float = 0.0
    tokens: int = 0

    @property
    def error_rate(self) -> float:
        return sum(self.failures.values()) / self.attempts if self.attempts else 0.0

    @property
    def cost_per_token(self) -> float:
        return self.cost / self.tokens if self.tokens else 0.0


@dataclass(frozen=True)
class Workload:
    since: datetime
    until: datetime
    items: list[WorkItem]
    attempts: list[AttemptRecord]
    profiles: dict[str, ProviderProfile]


def load_workload(ledger: Ledger, since: datetime, until: datetime) -> Workload:
    """The tasks and provider behaviour recorded in [since, until)."""
    attempts = ledger.attempts_between(since, until)
    by_task: dict[tuple[str, str], list[AttemptRecord]] = defaultdict(list)
    profiles: dict[str, ProviderProfile] = defaultdict(ProviderProfile)
    for a in attempts:
        by_task[(a.run_id, a.task_id)].append(a)
        if a.outcome in _NOT_PROVIDER_BEHAVIOUR:
            continue
        profile = profiles[a.provider_id]
        profile.attempts += 1
        if a.outcome == "success":
            profile.latencies_ms.append(a.latency_ms)
            profile.cost += a.cost_usd
            profile.tokens += a.usage.total
        else:
            profile.failures[a.outcome] += 1
    priorities = ledger.task_priorities(run_id for run_id, _ in by_task)
    items = []
    for (run_id, task_id), task_attempts in by_task.items():
        served = next((a for a in task_attempts if a.outcome == "success"), task_attempts[-1])
        first = min(a.started_at for a in task_attempts)
        items.append(
            WorkItem(
                run_id=run_id,
                task_id=task_id,
                task_type=served.task_type,
                team=served.team,
                priority=Priority(priorities.get((run_id, task_id), "normal")),
                usage=served.usage,
                offset_s=(first - since).total_seconds(),
            )
        )
    items.sort(key=lambda item: item.offset_s)
    return Workload(since, until, items, attempts, dict(profiles))


def _fraction(*parts: object) -> float:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class VirtualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class SimulatedProvider(AIProvider):
    """Plays one provider from its recorded profile (or its config) without calling anything."""

    type_name: ClassVar[str] = "simulated"

    def __init__(
        self,
        provider_id: str,
        config: ProviderConfig,
        profile: ProviderProfile | None,
        pricing: AIProvider,
        clock: VirtualClock,
        fallback_latency_ms: float,
    ) -> None:
        super().__init__(provider_id, config, clock=clock)
        self._profile = profile
        self._pricing = pricing
        self._latency = statistics.median(profile.latencies_ms) if profile and profile.latencies_ms else None
        self._latencies = sorted(profile.latencies_ms) if profile else []
        self._fallback_latency_ms = getattr(config, "latency_ms", fallback_latency_ms)
        # A mock's server-side quota is part of its behaviour; replay it on the virtual clock.
        self._quota = getattr(config, "quota_requests", None)
        self._quota_reset_s = float(getattr(config, "quota_reset_s", 60.0))
        self._window_start, self._window_used = 0.0, 0

    def capabilities(self) -> ProviderCapabilities:
        caps = self._pricing.capabilities()
        return ProviderCapabilities(
            task_types=caps.task_types, models=caps.models, max_concurrency=caps.max_concurrency, available=True
        )

    async def _probe(self) -> ProviderHealth:
        return ProviderHealth(status=HealthStatus.HEALTHY, checked_at=utc_now())

    def estimate_cost(self, task: AITask) -> Any:
        return self._pricing.estimate_cost(task)

    async def execute_task(self, task: AITask, context: ExecutionContext) -> ProviderResponse:
        self._take_quota()
        rate, mix = self._failure_model()
        if rate > 0 and _fraction(self.provider_id, task.id, task.metadata.get("run_id"), context.attempt) < rate:
            outcome = _pick(mix, _fraction("mix", self.provider_id, task.id, context.attempt))
            raise ERRORS_BY_OUTCOME[outcome](f"simulated {outcome}", provider_id=self.provider_id, error_type="replay")
        usage: TokenUsage = task.metadata["usage"]
        model = self.config.model or ""
        cost = self._pricing.price_for(model).cost(usage)
        if cost == 0 and self._profile is not None:
            cost = usage.total * self._profile.cost_per_token
        return ProviderResponse(
            text="", model=model or "simulated", usage=usage, cost_usd=cost, latency_ms=self._sample_latency(task.id)
        )

    def _failure_model(self) -> tuple[float, Counter[str]]:
        if self._profile is not None and self._profile.attempts:
            return self._profile.error_rate, self._profile.failures
        rate = float(getattr(self.config, "failure_rate", 0.0))
        return rate, Counter({str(getattr(self.config, "fail_with", "unavailable")): 1})

    def _sample_latency(self, key: str) -> float:
        if not self._latencies:
            return float(self._fallback_latency_ms)
        return self._latencies[int(_fraction("latency", key) * len(self._latencies))]

    def _take_quota(self) -> None:
        if self._quota is None:
            return
        now = self._clock()
        if now - self._window_start >= self._quota_reset_s:
            self._window_start, self._window_used = now, 0
        if self._window_used >= self._quota:
            remaining = self._quota_reset_s - (now - self._window_start)
            raise QuotaExhausted(
                "simulated quota", provider_id=self.provider_id, retry_after_s=remaining, reset_at=None
            )
        self._window_used += 1


def _pick(mix: Counter[str], fraction: float) -> str:
    total = sum(mix.values())
    running = 0.0
    for outcome, count in sorted(mix.items()):
        running += count / total
        if fraction < running:
            return outcome
    return max(mix, key=mix.__getitem__)


def simulate(workload: Workload, config: SwitchboardConfig, strategy: str | None = None) -> dict[str, Any]:
    """Replay `workload` under `config`; returns predicted figures beside the recorded ones."""
    clock = VirtualClock()
    latencies = [lat for p in workload.profiles.values() for lat in p.latencies_ms]
    fallback = statistics.median(latencies) if latencies else 0.0
    registry = ProviderRegistry()
    for provider_id, provider_config in config.providers.items():
        if not provider_config.enabled:
            continue
        pricing = provider_class(provider_config.type)(provider_id, provider_config)
        registry.add_instance(
            SimulatedProvider(
                provider_id, provider_config, workload.profiles.get(provider_id), pricing, clock, fallback
            )
        )
    events: list[tuple[float, RoutingEvent]] = []
    router = Router(
        registry,
        config,
        clock=clock,
        observer=lambda e: events.append((clock.now, e)),
        sleep=_virtual_sleep(clock),
    )
    chosen = strategy or config.strategy
    results: list[RoutedResult] = asyncio.run(_replay(router, workload, clock, chosen))
    return {
        "window": {"since": workload.since.isoformat(), "until": workload.until.isoformat()},
        "strategy": chosen,
        "tasks": len(workload.items),
        "actual": _actual_figures(workload),
        "predicted": _predicted_figures(results, events, workload.since),
    }


def _virtual_sleep(clock: VirtualClock) -> Any:
    async def sleep(seconds: float) -> None:
        clock.now += seconds

    return sleep


async def _replay(router: Router, workload: Workload, clock: VirtualClock, strategy: str) -> list[RoutedResult]:
    results = []
    for item in workload.items:
        clock.now = max(clock.now, item.offset_s)
        task = AITask(
            id=item.task_id,
            type=item.task_type,
            prompt="(replayed)",
            priority=item.priority,
            team=item.team,
            max_output_tokens=max(1, item.usage.output),
            metadata={"usage": item.usage, "run_id": item.run_id},
        )
        results.append(await router.route(task, RunInfo(run_id=f"sim-{item.run_id}", strategy=strategy)))
    return results


def _actual_figures(workload: Workload) -> dict[str, Any]:
    by_task: dict[tuple[str, str], list[AttemptRecord]] = defaultdict(list)
    for a in workload.attempts:
        by_task[(a.run_id, a.task_id)].append(a)
    served = Counter(a.provider_id for a in workload.attempts if a.outcome == "success")
    completed = sum(1 for attempts in by_task.values() if any(a.outcome == "success" for a in attempts))
    return {
        "cost_usd": sum(a.cost_usd for a in workload.attempts),
        "attempts": len(workload.attempts),
        "completed": completed,
        "success_rate": completed / len(by_task) if by_task else 0.0,
        "failovers": sum(count_failovers(sorted(v, key=lambda a: a.attempt)) for v in by_task.values()),
        "provider_mix": dict(sorted(served.items())),
    }


def _predicted_figures(
    results: list[RoutedResult], events: list[tuple[float, RoutingEvent]], since: datetime
) -> dict[str, Any]:
    attempts = [a for r in results for a in r.attempts]
    served = Counter(r.provider_id for r in results if r.status == "completed")
    completed = sum(1 for r in results if r.status == "completed")
    quota = [
        {
            "provider": e.provider_id,
            "kind": e.kind,
            "at": (since + timedelta(seconds=at)).isoformat(timespec="seconds"),
            **{k: v for k, v in e.detail.items() if k in ("reason", "limit", "exhausted_in_s")},
        }
        for at, e in events
        if e.kind in (QUOTA_BLOCKED, QUOTA_FORECAST_CROSSED)
    ]
    return {
        "cost_usd": sum(a.cost_usd for a in attempts),
        "attempts": len(attempts),
        "completed": completed,
        "success_rate": completed / len(results) if results else 0.0,
        "failovers": sum(count_failovers(r.attempts) for r in results),
        "provider_mix": dict(sorted(served.items())),
        "quota_events": quota,
    }
