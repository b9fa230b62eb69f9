"""What-if replay: the recorded workload through the real routing engine, against simulated providers.

    workload   `analytics.workload`: one item per recorded task in the window (type, team, priority, the
               engine's prompt and answer-length estimates, tokens, and the task's recorded calls per provider)
    providers  one `SimulatedProvider` per provider of the other config: a call a task made on that provider
               in the recording is played back as it happened (outcome, latency); any other call is drawn from
               the provider's recorded error rate, error mix and latencies on the task's type (on every type
               when it has fewer than `MIN_TYPE_ATTEMPTS` there; its config, for a mock never used); cost
               from the config's prices (the provider type's shipped prices), else the recorded cost per token
    engine     the real `Router` with the other config's strategy, limits, circuit and budgets, on a virtual
               clock set to each task's original start, so quota windows, cooldowns and forecasts happen
               when they would have; nothing sleeps and nothing is called

Under the config that recorded the window the engine makes the same choices, so the replay reproduces the
recorded provider mix and cost (up to float rounding), failures included. It routes one task at a time, so
what depended on concurrency in the recorded run can differ: calls held back while a new or half-open circuit
admits only `probe_in_flight` probes, queues at `max_concurrency`, `least_loaded`'s in-flight counts, and
`fastest_response`/`adaptive` scores learned from measured latencies.

This module is where analytics (the recorded workload) meets routing (the engine), per DESIGN.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import statistics
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any, ClassVar

from analytics import (
    CALLER_ERROR,
    SUCCESS,
    ProviderProfile,
    TaskFacts,
    WorkItem,
    Workload,
    build_workload,
    counts_for_provider,
    facts_from_decision,
    rate_or_none,
)
from ledger import AttemptRecord, Ledger, count_failovers, is_quota_failure
from providers import (
    CHARS_PER_TOKEN,
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
    utc_now,
)
from routing import (
    QUOTA_BLOCKED,
    QUOTA_FORECAST_CROSSED,
    ProviderRegistry,
    RoutedResult,
    Router,
    RoutingEvent,
    RunInfo,
    SwitchboardConfig,
    provider_class,
)

QUOTA_KINDS = (QUOTA_BLOCKED, QUOTA_FORECAST_CROSSED)
_QUOTA_DETAIL = ("reason", "limit", "exhausted_in_s")
# What a task asks for when its spec says nothing (batches/spec.py's default): the engine's output estimate.
DEFAULT_MAX_OUTPUT_TOKENS: int = AITask.model_fields["max_output_tokens"].default
# A provider's behaviour on a task type is drawn from that type's recorded calls once it has this many.
MIN_TYPE_ATTEMPTS = 5


def load_workload(ledger: Ledger, since: datetime, until: datetime) -> Workload:
    """The tasks, provider behaviour and quota events recorded in [since, until)."""
    attempts = ledger.attempts_between(since, until)
    facts = _task_facts(ledger, {a.run_id for a in attempts})
    events = [
        _quota_event(e.provider_id, e.kind, e.at, e.detail or {})
        for e in ledger.events_since(since, QUOTA_KINDS)
        if e.at < until
    ]
    return build_workload(
        since, until, attempts, facts, default_max_output_tokens=DEFAULT_MAX_OUTPUT_TOKENS, quota_events=events
    )


def _task_facts(ledger: Ledger, run_ids: set[str]) -> dict[tuple[str, str], TaskFacts]:
    # The decision holds the affinity key, the task's own strategy and, when recorded, the estimate.
    return {
        key: facts_from_decision(priority, decision, strategy)
        for key, (priority, decision, strategy) in ledger.task_decisions(run_ids).items()
    }


def _quota_event(provider: str | None, kind: str, at: datetime, detail: dict[str, Any]) -> dict[str, Any]:
    return {
        "provider": provider,
        "kind": kind,
        "at": at.isoformat(timespec="seconds"),
        **{k: v for k, v in detail.items() if k in _QUOTA_DETAIL},
    }


def _fraction(*parts: object) -> float:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class VirtualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class SimulatedProvider(AIProvider):
    """Plays one provider from the recording (or its config) without calling anything."""

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
        self._latencies = sorted(profile.latencies_ms) if profile else []
        self._latencies_by_type = {t: sorted(p.latencies_ms) for t, p in profile.by_type.items()} if profile else {}
        self._fallback_latency_ms = getattr(config, "latency_ms", fallback_latency_ms)
        # How many calls each task has made here so far: the n-th call plays back the task's n-th recorded one.
        self._calls_made: Counter[tuple[str, str]] = Counter()
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
        item: WorkItem = task.metadata["item"]
        self._take_quota()
        outcome, latency_ms, failed_usage = self._next_call(item, context.attempt)
        model = self.config.model or ""
        if outcome != SUCCESS:
            error = ERRORS_BY_OUTCOME.get(outcome, ERRORS_BY_OUTCOME["unavailable"])
            charged, list_price = self._charge(task, self._cost(model, failed_usage) if failed_usage else 0.0)
            raise error(
                f"replayed {outcome}",
                provider_id=self.provider_id,
                error_type="replay",
                usage=failed_usage,
                cost_usd=charged,
                list_price_usd=list_price,
            )
        charged, list_price = self._charge(task, self._cost(model, item.usage))
        return ProviderResponse(
            text="",
            model=model or "simulated",
            usage=item.usage,
            cost_usd=charged,
            list_price_usd=list_price,
            latency_ms=latency_ms,
        )

    def _charge(self, task: AITask, cost: float) -> tuple[float, float | None]:
        """(charged, list price when it differs), as the provider itself charges: a provider estimating its calls
        at list price apart from their charge (a Claude Code pool of logins) is charged nothing at the margin."""
        if cost and self._pricing.estimate_cost(task).list_price_usd is not None:
            return 0.0, cost
        return cost, None

    def _next_call(self, item: WorkItem, attempt: int) -> tuple[str, float, TokenUsage | None]:
        """(outcome, latency, tokens a failure used): the recorded call if there is one, else a draw."""
        key = (item.run_id, item.task_id)
        n = self._calls_made[key]
        self._calls_made[key] += 1
        recorded = item.calls.get(self.provider_id, ())
        if n < len(recorded):
            call = recorded[n]
            return call.outcome, call.latency_ms, call.usage if call.cost_usd > 0 else None
        profile = self._profile_for(item.task_type)
        latency = self._sample_latency(item.task_id, item.task_type, profile)
        if item.caller_error:  # the request itself was wrong; no provider would take it
            return CALLER_ERROR, latency, None
        rate, mix = self._failure_model(profile)
        if rate > 0 and _fraction(self.provider_id, item.task_id, item.run_id, attempt) < rate:
            return _pick(mix, _fraction("mix", self.provider_id, item.task_id, item.run_id, attempt)), latency, None
        return SUCCESS, latency, None

    def _cost(self, model: str, usage: TokenUsage) -> float:
        cost = self._pricing.price_for(model).cost(usage)
        if cost == 0 and self._profile is not None:
            cost = usage.total * self._profile.cost_per_token
        return cost

    def _profile_for(self, task_type: str) -> ProviderProfile | None:
        """The recorded behaviour to draw from: on this task type when there is enough of it, else overall."""
        if self._profile is None:
            return None
        of_type = self._profile.by_type.get(task_type)
        return of_type if of_type is not None and of_type.attempts >= MIN_TYPE_ATTEMPTS else self._profile

    def _failure_model(self, profile: ProviderProfile | None) -> tuple[float, Counter[str]]:
        if profile is not None and profile.attempts:
            return profile.error_rate, profile.failures
        rate = float(getattr(self.config, "failure_rate", 0.0))
        return rate, Counter({str(getattr(self.config, "fail_with", "unavailable")): 1})

    def _sample_latency(self, key: str, task_type: str, profile: ProviderProfile | None) -> float:
        of_type = profile is not None and profile is not self._profile
        latencies = self._latencies_by_type.get(task_type, []) if of_type else self._latencies
        if of_type and not latencies:  # it only ever failed this type: its overall latencies are all there is
            latencies = self._latencies
        if not latencies:
            return float(self._fallback_latency_ms)
        return latencies[int(_fraction("latency", key) * len(latencies))]

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
        "workload": {
            "tasks": len(workload.items),
            # Tasks that never succeeded, replayed with their type's median tokens.
            "usage_estimated": sum(item.usage_estimated for item in workload.items),
            # Tasks whose routing decision recorded the engine's estimate (else it is derived from the tokens).
            "estimates_recorded": sum(item.estimate_recorded for item in workload.items),
        },
        "actual": actual_figures(workload),
        "predicted": predicted_figures(results, events, workload.since),
    }


def _virtual_sleep(clock: VirtualClock) -> Any:
    async def sleep(seconds: float) -> None:
        clock.now += seconds

    return sleep


def replay_task(item: WorkItem) -> AITask:
    """The task as the engine saw it: a prompt of the recorded estimated length (chars = tokens x 4, the
    estimator's ratio), the task's answer-length estimate, priority, affinity and own strategy."""
    try:
        priority = Priority(item.priority)
    except ValueError:
        priority = Priority.NORMAL
    metadata: dict[str, Any] = {"item": item}
    if item.strategy:
        metadata["strategy"] = item.strategy
    return AITask(
        id=item.task_id,
        type=item.task_type,
        prompt="x" * (item.prompt_tokens * CHARS_PER_TOKEN),
        priority=priority,
        team=item.team,
        affinity=item.affinity,
        max_output_tokens=item.max_output_tokens,
        metadata=metadata,
    )


async def _replay(router: Router, workload: Workload, clock: VirtualClock, strategy: str) -> list[RoutedResult]:
    results = []
    for item in workload.items:
        clock.now = max(clock.now, item.offset_s)
        run = RunInfo(run_id=f"sim-{item.run_id}", strategy=strategy)
        results.append(await router.route(replay_task(item), run))
    return results


def actual_figures(workload: Workload) -> dict[str, Any]:
    by_task: dict[tuple[str, str], list[AttemptRecord]] = defaultdict(list)
    for a in workload.attempts:
        by_task[(a.run_id, a.task_id)].append(a)
    served = Counter(a.provider_id for a in workload.attempts if a.outcome == SUCCESS)
    completed = sum(1 for attempts in by_task.values() if any(a.outcome == SUCCESS for a in attempts))
    return {
        "cost_usd": sum(a.cost_usd for a in workload.attempts),
        "list_price_usd": sum(a.list_price for a in workload.attempts),
        "attempts": len(workload.attempts),
        "tasks": len(by_task),
        "completed": completed,
        **_success_rates(completed, len(by_task), [a.outcome for a in workload.attempts]),
        "failovers": sum(count_failovers(sorted(v, key=lambda a: a.attempt)) for v in by_task.values()),
        "provider_mix": dict(sorted(served.items())),
        "quota_events": workload.recorded_quota_events,
    }


def predicted_figures(
    results: list[RoutedResult], events: list[tuple[float, RoutingEvent]], since: datetime
) -> dict[str, Any]:
    attempts = [a for r in results for a in r.attempts]
    served = Counter(r.provider_id for r in results if r.status == "completed")
    completed = sum(1 for r in results if r.status == "completed")
    quota = [
        _quota_event(e.provider_id, e.kind, since + timedelta(seconds=at), e.detail)
        for at, e in events
        if e.kind in QUOTA_KINDS
    ]
    return {
        "cost_usd": sum(a.cost_usd for a in attempts),
        "list_price_usd": sum(a.list_price for a in attempts),
        "attempts": len(attempts),
        "tasks": len(results),
        "completed": completed,
        **_success_rates(completed, len(results), [a.outcome for a in attempts]),
        "failovers": sum(count_failovers(r.attempts) for r in results),
        # As the run summary counts them (ledger.is_quota_failure).
        "quota_failures": sum(
            is_quota_failure(str(r.status), [a.outcome for a in r.attempts], r.error) for r in results
        ),
        "provider_mix": dict(sorted(served.items())),
        "quota_events": quota,
    }


def _success_rates(completed: int, tasks: int, outcomes: list[str]) -> dict[str, float | None]:
    """The report's two rates (analytics.outcomes), null when undefined: tasks completed / tasks, and
    successful attempts / attempts that count for the provider (not cancelled, bad_request, budget_exceeded)."""
    judged = [o for o in outcomes if counts_for_provider(o)]
    return {
        "task_success_rate": rate_or_none(completed, tasks),
        "attempt_success_rate": rate_or_none(sum(o == SUCCESS for o in judged), len(judged)),
    }
