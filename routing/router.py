"""The routing step: pick a provider for a task, call it, fail over on errors, record every attempt.

    route(task):
      filter   capability, availability, health, circuit, quota (critical tasks may use the reserve), budget
      order    the strategy's order; providers past `switch_threshold` of a limit go last; affinity goes first
      call     the first, within its concurrency slots (urgent tasks first); on an error ask the failover
               policy: retry the same provider (short retry-after, overload), fail over, or stop
      record   every attempt, committed before the task is reported done

All state is confined to the engine's event loop (routing.loop), so nothing here takes locks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ledger import AttemptRecord
from providers import AIProvider, AITask, ExecutionContext, Priority, ProviderError, ProviderResponse, TokenUsage
from providers.base import estimate_prompt_tokens
from routing.affinity import AffinityMap
from routing.budget import BudgetGuard
from routing.circuit import CircuitBreaker, CircuitState
from routing.config import SwitchboardConfig
from routing.events import (
    BUDGET_EXHAUSTED,
    CIRCUIT_CLOSED,
    CIRCUIT_HALF_OPEN,
    CIRCUIT_OPENED,
    FAILOVER,
    RoutingEvent,
    RoutingObserver,
)
from routing.failover import FailoverPolicy, Retry, Stop
from routing.gate import PriorityGate
from routing.quota import ProviderQuota
from routing.registry import ProviderRegistry
from routing.stats import AdaptiveScores, HistoryRecord, LatencyStats
from routing.strategies import Candidate, Strategy, make_strategy

# Returns None (recorded synchronously) or a future that completes once the row is committed.
AttemptRecorder = Callable[[AttemptRecord], Future[None] | None]

# Errors that say something about the provider's health; the others (quota, rate limits, the caller's own
# mistakes, cancellations) must not open its circuit.
_HEALTH_FAILURES = frozenset({"unavailable", "timeout", "overloaded", "malformed_response", "authentication"})
_CIRCUIT_EVENTS = {
    CircuitState.OPEN: CIRCUIT_OPENED,
    CircuitState.HALF_OPEN: CIRCUIT_HALF_OPEN,
    CircuitState.CLOSED: CIRCUIT_CLOSED,
}


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What the router needs to know about the run a task belongs to."""

    run_id: str = "adhoc"
    strategy: str = "priority_based"
    team: str | None = None


@dataclass(slots=True)
class RoutedResult:
    task_id: str
    status: str  # completed | failed | cancelled
    provider_id: str | None = None
    response: ProviderResponse | None = None
    outcome: str | None = None  # the last error's outcome when not completed
    error: str | None = None
    attempts: list[AttemptRecord] = field(default_factory=list)
    decision: dict[str, Any] = field(default_factory=dict)
    pending_commits: list[Future[None]] = field(default_factory=list, repr=False)

    @property
    def cost_usd(self) -> float:
        return sum(a.cost_usd for a in self.attempts)

    async def committed(self) -> None:
        """Wait until every attempt row is durable (concurrent tasks share commits)."""
        while self.pending_commits:
            await asyncio.shield(asyncio.wrap_future(self.pending_commits.pop(0)))


class _ProviderState:
    """The engine's view of one provider, with the facts every decision needs precomputed."""

    __slots__ = (
        "available",
        "breaker",
        "capability_match",
        "gate",
        "index",
        "prices",
        "priority",
        "provider",
        "quota",
        "task_types",
    )

    def __init__(self, provider: AIProvider, index: int, breaker: CircuitBreaker, quota: ProviderQuota) -> None:
        self.provider = provider
        self.index = index
        self.breaker = breaker
        self.quota = quota
        capabilities = provider.capabilities()
        self.available = capabilities.available
        self.task_types = capabilities.task_types
        self.capability_match = 0.5 if capabilities.task_types is None else 1.0
        self.priority = provider.config.priority
        self.gate = PriorityGate(capabilities.max_concurrency)
        # Providers that keep the base estimator are priced here without building a CostEstimate per decision.
        if type(provider).estimate_cost is AIProvider.estimate_cost:
            price = provider.price_for(provider.config.model or "")
            self.prices: tuple[float, float] | None = (price.input, price.output)
        else:
            self.prices = None


class Router:
    def __init__(
        self,
        registry: ProviderRegistry,
        config: SwitchboardConfig | None = None,
        *,
        recorder: AttemptRecorder | None = None,
        observer: RoutingObserver | None = None,
        policy: FailoverPolicy | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        # Only the routing settings are used; the providers come from the registry.
        self.config = config or SwitchboardConfig.model_construct()
        self._recorder = recorder
        self._observer = observer
        self._policy = policy or FailoverPolicy()
        self._sleep = sleep
        self._clock = clock
        self.latency = LatencyStats()
        self.adaptive = AdaptiveScores()
        self.affinity = AffinityMap()
        self.budget = BudgetGuard(self.config.budget)
        self._strategies: dict[str, Strategy] = {}
        self._states: dict[str, _ProviderState] = {}
        self.sync_providers()

    # --- provider set -----------------------------------------------------------------------------

    def sync_providers(self) -> None:
        """Pick up providers added to or removed from the registry (no restart needed)."""
        current = {p.provider_id: p for p in self.registry}
        for provider_id in list(self._states):
            if provider_id not in current or self._states[provider_id].provider is not current[provider_id]:
                del self._states[provider_id]
        for index, (provider_id, provider) in enumerate(current.items()):
            if provider_id in self._states:
                self._states[provider_id].index = index
                continue
            breaker = CircuitBreaker(self.config.circuit, self._clock, self._circuit_observer(provider_id))
            quota = ProviderQuota(
                provider_id,
                provider.config.limits,
                switch_threshold=self.config.switch_threshold,
                reserve_for_critical=self.config.reserve_for_critical,
                per_subscription=bool(getattr(provider.config, "subscriptions", None)),
                observer=self._observer,
                clock=self._clock,
            )
            provider.add_quota_listener(quota.on_signal)
            self._states[provider_id] = _ProviderState(provider, index, breaker, quota)

    def state(self, provider_id: str) -> _ProviderState:
        return self._states[provider_id]

    def provider_ids(self) -> list[str]:
        return list(self._states)

    def refresh_history(self, records: Iterable[HistoryRecord]) -> None:
        """Feed the adaptive strategy with aggregated history from the ledger."""
        self.adaptive.refresh(records)

    # --- routing ----------------------------------------------------------------------------------

    async def route_many(self, tasks: Sequence[AITask], run: RunInfo = RunInfo()) -> list[RoutedResult]:
        """Route many ready tasks at once; per-provider slots bound what is in flight."""
        return list(await asyncio.gather(*(self.route(t, run) for t in tasks)))

    async def route(
        self, task: AITask, run: RunInfo = RunInfo(), *, first_attempt: int = 1, durable: bool = True
    ) -> RoutedResult:
        """Try providers in order within the task's attempt budget; never raises ProviderError.

        With `durable` (the default) it returns once every attempt row is committed. A caller that wants to
        start dependent work on the answer at once passes `durable=False` and must await
        `result.committed()` before it reports the task complete.
        """
        strategy_name = str(task.metadata.get("strategy") or run.strategy)
        critical = task.priority is Priority.CRITICAL
        order, decision, estimates = self._plan(task, run, strategy_name, critical)
        result = RoutedResult(task_id=task.id, status="failed", decision=decision)
        try:
            await self._call_in_order(
                task, run, strategy_name, order, estimates, first_attempt, result, result.pending_commits
            )
        finally:
            if durable:
                await result.committed()
        return result

    def _plan(
        self, task: AITask, run: RunInfo, strategy_name: str, critical: bool
    ) -> tuple[list[_ProviderState], dict[str, Any], dict[str, tuple[float, float]]]:
        # This runs for every decision: plain loops and precomputed per-provider facts, no pydantic.
        strategy = self._strategy(strategy_name)
        wants_latency = strategy_name == "fastest_response"
        wants_score = strategy_name == "adaptive"
        prompt_tokens = estimate_prompt_tokens(task)
        output_tokens = task.max_output_tokens
        budget_on = self.budget.active
        candidates: list[Candidate] = []
        skipped: dict[str, str] = {}
        estimates: dict[str, tuple[float, float]] = {}
        task_type = task.type
        for provider_id, st in self._states.items():
            if not st.available:
                skipped[provider_id] = "unavailable"
                continue
            if st.task_types is not None and task_type not in st.task_types:
                skipped[provider_id] = "capability"
                continue
            breaker = st.breaker
            if not breaker.admits():
                skipped[provider_id] = "circuit_open" if breaker.state is CircuitState.OPEN else "circuit_probing"
                continue
            if st.prices is None:
                estimate = st.provider.estimate_cost(task)
                tokens, cost = estimate.tokens_input + estimate.tokens_output, estimate.cost_usd
            else:
                tokens = prompt_tokens + output_tokens
                cost = (prompt_tokens * st.prices[0] + output_tokens * st.prices[1]) / 1_000_000
            estimates[provider_id] = (tokens, cost)
            reason = st.quota.refusal(tokens, cost, critical=critical)
            if reason is None and budget_on:
                reason = self.budget.refusal(run.run_id, cost)
            if reason is not None:
                skipped[provider_id] = reason
                continue
            candidates.append(
                Candidate(
                    provider_id,
                    st.priority,
                    st.gate.in_use,
                    st.gate.limit,
                    self.latency.get(provider_id, task_type) if wants_latency else None,
                    cost,
                    st.capability_match,
                    self.adaptive.get(provider_id, task_type) if wants_score else None,
                    st.index,
                )
            )
        states = self._states
        ordered = [states[c.provider_id] for c in strategy.order(candidates, task_type)]
        # Stable: providers near a limit keep their relative order but come after the others.
        if any(st.quota.watched for st in ordered):
            ordered.sort(key=lambda st: st.quota.over_threshold())
        sticky = self.affinity.get(task.affinity)
        if sticky is not None:
            ordered.sort(key=lambda st: st.provider.provider_id != sticky)
        decision = {
            "strategy": strategy_name,
            "candidates": [c.provider_id for c in candidates],
            "skipped": skipped,
            "order": [st.provider.provider_id for st in ordered],
            "chosen": None,
        }
        if task.affinity:
            decision["affinity"] = {"key": task.affinity, "sticky": sticky}
        if not ordered and skipped and all(r.startswith("budget") for r in skipped.values()):
            self._emit(RoutingEvent(BUDGET_EXHAUSTED, detail={"run_id": run.run_id, "task_id": task.id}))
        return ordered, decision, estimates

    async def _call_in_order(
        self,
        task: AITask,
        run: RunInfo,
        strategy: str,
        order: list[_ProviderState],
        estimates: dict[str, tuple[float, float]],
        first_attempt: int,
        result: RoutedResult,
        pending: list[Future[None]],
    ) -> None:
        decision = result.decision
        if not order:
            skipped = decision["skipped"]
            budget_only = bool(skipped) and all(r.startswith("budget") for r in skipped.values())
            result.outcome = "budget_exceeded" if budget_only else "unavailable"
            reasons = "; ".join(f"{p}: {r}" for p, r in skipped.items()) or "no providers configured"
            result.error = f"no provider can take task type {task.type!r} now ({reasons})"
            return
        # Critical tasks are tried on every capable provider before failing.
        budget = max(task.max_attempts, len(order)) if task.priority is Priority.CRITICAL else task.max_attempts
        attempt, end = first_attempt, first_attempt + budget
        previous_failed: str | None = None
        for st in order:
            if attempt >= end:
                break
            provider_id = st.provider.provider_id
            if previous_failed is not None:
                # Re-check: the circuit or quota may have changed while earlier providers were tried.
                if not st.breaker.admits():
                    decision["skipped"][provider_id] = "circuit_open"
                    continue
                self._emit(RoutingEvent(FAILOVER, provider_id, detail={"from": previous_failed, "task_id": task.id}))
            calls_here = 0
            while attempt < end:
                error = await self._attempt(st, task, run, strategy, attempt, estimates[provider_id], result, pending)
                attempt += 1
                calls_here += 1
                if error is None:
                    decision["chosen"] = provider_id
                    self.affinity.remember(task.affinity, provider_id)
                    return
                step = self._policy.decide(error, calls_here)
                if isinstance(step, Retry) and attempt < end and st.breaker.admits():
                    await self._sleep(step.delay_s)
                    continue
                if isinstance(step, Stop):
                    return
                break
            previous_failed = provider_id

    async def _attempt(
        self,
        st: _ProviderState,
        task: AITask,
        run: RunInfo,
        strategy: str,
        attempt: int,
        estimate: tuple[float, float],
        result: RoutedResult,
        pending: list[Future[None]],
    ) -> ProviderError | None:
        """One call; fills `result` and returns the error, or None on success."""
        provider = st.provider
        await st.gate.acquire(task.priority.rank)
        st.breaker.begin()
        st.quota.begin()
        budget_on = self.budget.active
        if budget_on:
            self.budget.reserve(run.run_id, estimate[1])
        context = ExecutionContext(run_id=run.run_id, attempt=attempt, timeout_s=provider.config.timeout_s)
        started, t0 = datetime.now(UTC), time.perf_counter()
        record = {
            "run_id": run.run_id,
            "task_id": task.id,
            "provider_id": provider.provider_id,
            "task_type": task.type,
            "attempt": attempt,
            "team": task.team or run.team,
            "strategy": strategy,
            "started_at": started,
        }
        try:
            response = await provider.execute_task(task, context)
        except ProviderError as error:
            done = self._record(result, pending, record, t0, outcome=error.outcome, error=error)
            self._settle(st, run, estimate, done, budget_on)
            if error.outcome in _HEALTH_FAILURES:
                st.breaker.fail()
            else:
                st.breaker.abandon()
            st.quota.on_error(error)
            self.adaptive.observe(provider.provider_id, task.type, False, done.latency_ms, done.cost_usd)
            result.outcome, result.error, result.provider_id = error.outcome, str(error), None
            return error
        except asyncio.CancelledError:
            done = self._record(result, pending, record, t0, outcome="cancelled")
            self._settle(st, run, estimate, done, budget_on)
            st.breaker.abandon()
            result.status, result.outcome, result.error = "cancelled", "cancelled", "cancelled while calling"
            raise
        finally:
            st.gate.release()
        done = self._record(result, pending, record, t0, outcome="success", response=response)
        self._settle(st, run, estimate, done, budget_on)
        st.breaker.succeed()
        self.latency.observe(provider.provider_id, task.type, done.latency_ms)
        self.adaptive.observe(provider.provider_id, task.type, True, done.latency_ms, done.cost_usd)
        result.status, result.provider_id, result.response = "completed", provider.provider_id, response
        result.outcome = result.error = None
        return None

    def _settle(
        self, st: _ProviderState, run: RunInfo, estimate: tuple[float, float], done: AttemptRecord, budget_on: bool
    ) -> None:
        st.quota.settle(done.usage.total, done.cost_usd)
        if budget_on:
            self.budget.settle(run.run_id, estimate[1], done.cost_usd)

    def _record(
        self,
        result: RoutedResult,
        pending: list[Future[None]],
        record: dict[str, Any],
        t0: float,
        *,
        outcome: str,
        error: ProviderError | None = None,
        response: ProviderResponse | None = None,
    ) -> AttemptRecord:
        attempt = AttemptRecord(
            **record,
            finished_at=datetime.now(UTC),
            outcome=outcome,
            error_type=error.error_type if error else None,
            error_message=str(error)[:500] if error else None,
            subscription=(response.subscription if response else error.subscription if error else None),
            model=response.model if response else error.model if error else None,
            usage=(response.usage if response else error.usage if error and error.usage else TokenUsage()),
            cost_usd=response.cost_usd if response else error.cost_usd if error else 0.0,
            latency_ms=(time.perf_counter() - t0) * 1000,
            output=response.text if response else None,
        )
        result.attempts.append(attempt)
        if self._recorder is not None:
            done = self._recorder(attempt)
            if done is not None:
                pending.append(done)
        return attempt

    # --- helpers ----------------------------------------------------------------------------------

    def _strategy(self, name: str) -> Strategy:
        strategy = self._strategies.get(name)
        if strategy is None:
            strategy = self._strategies[name] = make_strategy(name)
        return strategy

    def _circuit_observer(self, provider_id: str) -> Callable[[CircuitState, CircuitState], None]:
        def changed(old: CircuitState, new: CircuitState) -> None:
            kind = _CIRCUIT_EVENTS.get(new)
            if kind is not None:
                self._emit(RoutingEvent(kind, provider_id, detail={"from": str(old), "to": str(new)}))

        return changed

    def _emit(self, event: RoutingEvent) -> None:
        if self._observer is not None:
            self._observer(event)
