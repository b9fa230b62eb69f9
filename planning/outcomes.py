"""A synthetic week through the real routing engine, on virtual time: what each strategy costs and delivers.

engine    `routing.Router` with the standard providers file (`PROVIDERS_DOC`) and the strategy under test,
          its clock and sleep the virtual loop's (`planning.virtual_time`), health checks off (the stand-ins
          are always reachable; incidents show in calls, as they do in production)
arrivals  each task is handed to the router at its arrival time and routed concurrently with whatever is
          still running, so slots, queues, per-minute limits and usage windows fill as they would
counting  cost_usd          what the calls were charged, failed ones included, as the ledger counts it: a
                            subscription login's calls are paid for already (their fee is `fixed_usd`, the same
                            for every strategy), and the local model is free
          list_price_usd    every call at list price, subscription calls included (what the CLI reports)
          task_success_rate tasks completed / tasks
          quota_failures    tasks failed for quota by the run summary's rule (`ledger.is_quota_failure`)
          p50/p95_task_s    arrival to answer, completed tasks
          deadline_misses   tasks with a deadline not completed within it
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Collection
from dataclasses import asdict, dataclass
from typing import Any

from ledger import is_quota_failure
from planning.synthetic import SyntheticTask, SyntheticWeek, wall_clock
from planning.synthetic_providers import BEHAVIOURS, PROVIDERS_DOC, SyntheticProvider
from planning.virtual_time import run_virtual
from providers import CHARS_PER_TOKEN, AITask, Priority
from routing import (
    STRATEGY_NAMES,
    FailoverPolicy,
    ProviderRegistry,
    RoutedResult,
    Router,
    RunInfo,
    make_strategy,
    parse_config,
    provider_class,
)

COMPLETED = "completed"


@dataclass(frozen=True, slots=True)
class StrategyOutcome:
    cost_usd: float
    task_success_rate: float
    quota_failures: int
    p50_task_s: float | None
    p95_task_s: float | None
    list_price_usd: float
    tasks: int
    completed: int
    deadline_misses: int
    attempts: int
    # Tasks completed per provider.
    served: dict[str, int]

    def figures(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class TaskRun:
    """One task as routed: its spec, when it finished (virtual seconds) and the router's result."""

    spec: SyntheticTask
    finished_s: float
    result: RoutedResult


def fixed_usd(behaviours: dict[str, Any] = BEHAVIOURS) -> float:
    """The week's subscription fees: paid whatever routing does."""
    return sum(b.fixed_usd_per_week for b in behaviours.values())


def run_week(week: SyntheticWeek, strategy: str, providers: Collection[str] | None = None) -> StrategyOutcome:
    """Route `week` under `strategy` and count what came out; `providers`: only these of the standard four."""
    return outcome_of(route_week(week, strategy, providers))


def route_week(week: SyntheticWeek, strategy: str, providers: Collection[str] | None = None) -> list[TaskRun]:
    """Every task of `week` as routed under `strategy`, in arrival order."""
    if strategy not in STRATEGY_NAMES:
        raise ValueError(f"unknown strategy {strategy!r}")
    return run_virtual(_route_week(week, strategy, providers))


def outcome_of(runs: list[TaskRun]) -> StrategyOutcome:
    """The figures of routed tasks (see the module's docstring)."""
    attempts = [a for r in runs for a in r.result.attempts]
    done = [r for r in runs if r.result.status == COMPLETED]
    durations = sorted(r.finished_s - r.spec.arrival_s for r in done)
    misses = sum(
        1
        for r in runs
        if r.spec.deadline_s is not None
        and (r.result.status != COMPLETED or r.finished_s - r.spec.arrival_s > r.spec.deadline_s)
    )
    return StrategyOutcome(
        cost_usd=round(sum(a.cost_usd for a in attempts), 4),
        task_success_rate=round(len(done) / len(runs), 4) if runs else 0.0,
        quota_failures=sum(
            is_quota_failure(str(r.result.status), [a.outcome for a in r.result.attempts], r.result.error) for r in runs
        ),
        p50_task_s=round(_percentile(durations, 0.5), 1) if durations else None,
        p95_task_s=round(_percentile(durations, 0.95), 1) if durations else None,
        list_price_usd=round(sum(a.list_price for a in attempts), 4),
        tasks=len(runs),
        completed=len(done),
        deadline_misses=misses,
        attempts=len(attempts),
        served=dict(sorted(Counter(r.result.provider_id for r in done if r.result.provider_id).items())),
    )


def _percentile(ordered: list[float], q: float) -> float:
    # Nearest rank, as the other benchmarks report.
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def build_router(week: SyntheticWeek, strategy: str, providers: Collection[str] | None = None) -> Router:
    """The engine over the standard providers (or those of them named), on the running (virtual) loop's clock."""
    loop = asyncio.get_running_loop()
    doc = {**PROVIDERS_DOC, "strategy": strategy}
    if providers is not None:
        doc["providers"] = {pid: p for pid, p in PROVIDERS_DOC["providers"].items() if pid in providers}
    config = parse_config(doc, "<synthetic week>")
    registry = ProviderRegistry()
    for provider_id, provider_config in config.providers.items():
        pricing = provider_class(provider_config.type)(provider_id, provider_config)
        registry.add_instance(
            SyntheticProvider(
                provider_id,
                provider_config,
                BEHAVIOURS[provider_id],
                week.incidents,
                pricing,
                loop.time,
                week.seed,
            )
        )
    strategies = {strategy: make_strategy(strategy)}
    if strategy == "adaptive":
        # Its exploration draws from a source seeded by the week, so the run repeats.
        strategies[strategy] = type(strategies[strategy])(rng=random.Random(week.seed))  # type: ignore[call-arg]
    return Router(
        registry,
        config,
        # Backoff jitter from a source seeded by the week too.
        policy=FailoverPolicy(config.failover, rng=random.Random(week.seed)),
        clock=loop.time,
        wall_clock=wall_clock(loop.time),
        sleep=asyncio.sleep,
        health_checks=False,
        strategies=strategies,
    )


def synthetic_task(spec: SyntheticTask) -> AITask:
    """The task as the engine sees it: a prompt of the drawn size (the estimator's chars per token)."""
    return AITask(
        id=spec.id,
        type=spec.type,
        prompt="x" * (spec.prompt_tokens * CHARS_PER_TOKEN),
        priority=Priority(spec.priority),
        team=spec.team,
        affinity=spec.affinity,
        max_output_tokens=spec.max_output_tokens,
        metadata={"synthetic": spec},
    )


async def _route_week(week: SyntheticWeek, strategy: str, providers: Collection[str] | None) -> list[TaskRun]:
    loop = asyncio.get_running_loop()
    router = build_router(week, strategy, providers)
    run = RunInfo(run_id=f"synthetic-week-{week.seed}", strategy=strategy)

    async def one(spec: SyntheticTask) -> TaskRun:
        result = await router.route(synthetic_task(spec), run)
        return TaskRun(spec, loop.time(), result)

    pending: list[asyncio.Task[TaskRun]] = []
    for spec in week.tasks:
        wait = spec.arrival_s - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        pending.append(asyncio.create_task(one(spec)))
    return list(await asyncio.gather(*pending))
