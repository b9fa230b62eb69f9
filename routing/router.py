"""The routing step: pick a provider for a task, call it, fail over on errors, record every attempt.

    route(task):
      plan     filter: capability, availability, health, open circuit, quota (critical tasks may use the
               reserve), budget spent; order: the strategy's, providers past `switch_threshold` of a limit
               last, affinity first
      admit    per provider, right before each call (first call, retry or failover): wait for a turn while
               the only obstacles are busy slots (concurrency, or the probes of an unknown/half-open circuit,
               or budget reserved by calls in flight), urgent tasks first; then check circuit, health, quota
               and budget again and either take a slot or skip the provider with the reason
      call     on an error ask the failover policy: rotate to the provider's next subscription (that
               subscription's own trouble: its limit, its refused credential, its long rate limit; free of
               max_attempts, at most once per subscription), retry the same provider (short retry-after,
               overload), fail over, or stop; errors that are not ProviderErrors are caught here and recorded too
      record   every attempt, committed before the task is reported done

A task never fails because others are probing or hold the slots: it waits, and when a probe settles it goes
(circuit closed) or moves on (circuit open). When its plan runs out after it waited, it plans again over
the providers it has not tried, since state may have changed meanwhile.

All state is confined to the engine's event loop (routing.loop), so nothing here takes locks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ledger import (
    CACHE_PROVIDER,
    QUOTA_REFUSED,
    AttemptRecord,
    CachedAnswer,
    DecisionCache,
    HistoryRecord,
    ReservationAsk,
    RouteDecision,
    TaskStatus,
    is_quota_reason,
)
from providers import (
    NOT_ABOUT_THE_PROVIDER,
    AIProvider,
    AITask,
    ExecutionContext,
    HealthStatus,
    Priority,
    ProviderError,
    ProviderResponse,
    utc_now,
)
from routing.admission import Admitter, AskFor
from routing.affinity import AffinityMap
from routing.attempts import HEALTH_FAILURES, attempt_record, internal_error, not_a_response
from routing.batch_budget import BatchBudget
from routing.budget import BudgetGuard, BudgetRefusal
from routing.cache import CacheLookup, ResponseCache
from routing.circuit import CircuitBreaker, CircuitState
from routing.config import SwitchboardConfig
from routing.decision import DecisionDraft
from routing.deferral import Deferral
from routing.events import (
    BUDGET_EXHAUSTED,
    CIRCUIT_CLOSED,
    CIRCUIT_HALF_OPEN,
    CIRCUIT_OPENED,
    FAILOVER,
    RoutingEvent,
    RoutingObserver,
)
from routing.failover import FailoverPolicy, Retry, Rotate, Stop
from routing.health import HealthMonitor, HealthView
from routing.planner import Plan, Planner
from routing.provider_state import ProviderState, subscription_limits
from routing.quota import PastCall, ProviderQuota
from routing.registry import ProviderRegistry
from routing.shared import SharedLimits, Ticket
from routing.shared_asks import SharedAsks
from routing.shared_sync import SharedSync
from routing.stats import AdaptiveScores, LatencyStats
from routing.strategies import Strategy

log = logging.getLogger(__name__)

# Returns None (recorded synchronously) or a future that completes once the row is committed.
AttemptRecorder = Callable[[AttemptRecord], Future[None] | None]

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
    status: TaskStatus  # completed | failed | cancelled
    provider_id: str | None = None
    response: ProviderResponse | None = None
    outcome: str | None = None  # the last error's outcome when not completed
    error: str | None = None
    attempts: list[AttemptRecord] = field(default_factory=list)
    pending_commits: list[Future[None]] = field(default_factory=list, repr=False)
    # The routing decision as the router made it, frozen into `decision` when first read: freezing builds a
    # model (microseconds), and many results are never asked (a what-if replay's, the routing benchmark's).
    draft: DecisionDraft | None = field(default=None, repr=False)
    _decision: RouteDecision | None = field(default=None, repr=False)

    @property
    def decision(self) -> RouteDecision | None:
        """How the task was routed (None only while it is being routed)."""
        if self._decision is None and self.draft is not None:
            self._decision = self.draft.freeze()
        return self._decision

    @property
    def cost_usd(self) -> float:
        return sum(a.cost_usd for a in self.attempts)

    async def committed(self) -> None:
        """Wait until every attempt row is durable (concurrent tasks share commits)."""
        while self.pending_commits:
            await asyncio.shield(asyncio.wrap_future(self.pending_commits.pop(0)))


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
        health_checks: bool = True,
        shared: SharedLimits | None = None,
        strategies: Mapping[str, Strategy] | None = None,
        wall_clock: Callable[[], datetime] = utc_now,
        cache_lookup: CacheLookup | None = None,
        deferral: Deferral | None = None,
    ) -> None:
        self.registry = registry
        # Sends deferrable tasks to vendor batch APIs (None: every call is live).
        self._deferral = deferral
        # Only the routing settings are used; the providers come from the registry.
        self.config = config or SwitchboardConfig.model_construct()
        self._recorder = recorder
        self._observer = observer
        self._policy = policy or FailoverPolicy(self.config.failover)
        self._sleep = sleep
        self._clock = clock
        # Turns the reset times providers report into seconds on `clock`; a virtual clock needs its own.
        self._wall_clock = wall_clock
        self.latency = LatencyStats()
        self.adaptive = AdaptiveScores()
        self.affinity = AffinityMap()
        self.budget = BudgetGuard(self.config.budget)
        # Limits shared with every other routing process (None: this process's own view only).
        self.shared = shared
        self._asks = SharedAsks(self.config) if shared is not None else None
        # Budgets whose exhaustion was reported: ("run", run id) and ("day", UTC date), once each.
        self._budget_reported: set[tuple[str, str]] = set()
        hours = self.config.alerts.quota_forecast_hours
        self._forecast_horizon_s = hours * 3600.0 if hours is not None else None
        self._admitter = Admitter(self.budget, shared)
        self._batch_budget = BatchBudget(self.budget, self._admitter, shared, self._asks)
        # The response cache, when the providers file turns it on and the caller can look answers up (the ledger).
        self._cache: ResponseCache | None = None
        if self.config.cache.enabled and cache_lookup is not None:
            self._cache = ResponseCache(self.config.cache, cache_lookup, wall_clock=wall_clock)
        self._states: dict[str, ProviderState] = {}
        self._planner = Planner(
            self._states, self.latency, self.adaptive, self.budget, self.affinity, strategies, self.config.teams
        )
        self.health = HealthMonitor(self._health_targets) if health_checks else None
        self.sync_providers()
        self._sync: SharedSync | None = None
        if shared is not None:
            self._sync = SharedSync(
                shared, states=self.states, clock=self._clock, cooldown_s=self.config.circuit.cooldown_s
            )
            self._observer = self._sync.observer(self._observer)
            for st in self._states.values():
                st.quota.set_observer(self._observer)

    # --- provider set -----------------------------------------------------------------------------

    def sync_providers(self) -> None:
        """Pick up providers added to, removed from or updated in the registry (no restart needed).

        An updated provider keeps its circuit, quota windows (those of limits it still has), blocks and
        health; calls in flight on the old instance release their slots on the same state.
        """
        current = {p.provider_id: p for p in self.registry}
        for provider_id in list(self._states):
            if provider_id not in current:
                gone = self._states.pop(provider_id)
                gone.removed = True
                gone.gate.wake_all()  # its waiters leave for other providers
        for index, (provider_id, provider) in enumerate(current.items()):
            st = self._states.get(provider_id)
            if st is None:
                st = self._new_state(provider, index)
                self._states[provider_id] = st
            elif st.provider is not provider:
                self._adopt_update(st, provider)
            st.index = index

    def _new_state(self, provider: AIProvider, index: int) -> ProviderState:
        provider_id = provider.provider_id
        breaker = CircuitBreaker(self.config.circuit, self._clock, self._circuit_observer(provider_id))
        st = ProviderState(provider, index, breaker, self._quota_for(provider), HealthView(self._waker(provider_id)))
        self._listen(st, provider)
        return st

    def _adopt_update(self, st: ProviderState, provider: AIProvider) -> None:
        if not st.same_limits(provider):
            quota = self._quota_for(provider)
            quota.carry_over(st.quota)
            st.quota = quota
        fresh = HealthView(self._waker(provider.provider_id))
        fresh.carry_over(st.health)
        fresh.status = HealthStatus.UNKNOWN  # a new config (URL, key) deserves a fresh check
        st.health = fresh
        st.adopt(provider)
        self._listen(st, provider)

    def _quota_for(self, provider: AIProvider) -> ProviderQuota:
        quota = ProviderQuota(
            provider.provider_id,
            provider.config.limits,
            subscriptions=subscription_limits(provider),
            switch_threshold=self.config.switch_threshold,
            reserve_for_critical=self.config.reserve_for_critical,
            observer=self._observer,
            clock=self._clock,
            wall_clock=self._wall_clock,
            forecast_horizon_s=self._forecast_horizon_s,
            long_wait_s=self._policy.settings.retry_max_s,
        )
        if self._asks is not None and quota.subscriptions_limited:
            # Shared subscription limits count against the subscription a call uses: routing names it. Without
            # any, the provider's pool keeps choosing (its rotation spreads calls; routing's least-pressure pick
            # would send every call to the first subscription, all pressures being 0).
            quota.name_subscriptions = True
        return quota

    @staticmethod
    def _listen(st: ProviderState, provider: AIProvider) -> None:
        # Through the state, so a quota object replaced by a later update still hears the provider.
        provider.add_quota_listener(lambda signal: st.quota.on_signal(signal))

    def state(self, provider_id: str) -> ProviderState:
        return self._states[provider_id]

    def states(self) -> dict[str, ProviderState]:
        """Every provider's state, by id (read and changed on the routing loop only)."""
        return self._states

    def provider_ids(self) -> list[str]:
        return list(self._states)

    def now(self) -> float:
        """The engine's clock (monotonic seconds), against which circuits, blocks and windows are kept."""
        return self._clock()

    # --- memory of earlier runs (routing.restore feeds these from the ledger) ----------------------

    def refresh_history(self, records: Iterable[HistoryRecord]) -> None:
        """Feed the adaptive strategy with aggregated history from the ledger."""
        self.adaptive.refresh(records)

    def providers_with_limits(self) -> list[str]:
        """Providers whose configured limits (their own or a subscription's) count past calls."""
        return [pid for pid, st in self._states.items() if st.quota.has_limits]

    def restore_usage(self, provider_id: str, calls: Iterable[PastCall]) -> None:
        """Replay a provider's recorded calls into its quota windows."""
        self._states[provider_id].quota.restore_usage(calls)

    def restore_circuit(self, provider_id: str, recent: Sequence[tuple[bool, float]]) -> None:
        """Start a provider's circuit from its last calls: (failed, seconds ago), newest first."""
        self._states[provider_id].breaker.restore(recent)

    def restore_quota_block(
        self, provider_id: str, reset_at: datetime, reason: str, subscription: str | None = None
    ) -> None:
        """Block a provider (or one of its subscriptions) until `reset_at`, as a recorded quota error did."""
        self._states[provider_id].quota.restore_block(reset_at, reason, subscription)

    def subscriptions(self, provider_id: str) -> tuple[str, ...]:
        """The subscriptions routing knows of a provider (configured or reported)."""
        return self._states[provider_id].quota.subscriptions

    def clear_quota_block(self, provider_id: str, subscription: str | None = None) -> None:
        """A recorded block ended (its quota reset)."""
        self._states[provider_id].quota.clear_block(subscription)

    def seed_budget(self, run_id: str, *, run_spent: float, day_spent: float) -> None:
        """Start the budgets from what the ledger already counts (a resumed run, earlier runs today)."""
        self.budget.seed(run_id=run_id, run_spent=run_spent, day_spent=day_spent)

    def _health_targets(self) -> list[tuple[AIProvider, HealthView]]:
        registry = self.registry
        return [(st.provider, st.health) for pid, st in self._states.items() if pid in registry]

    # --- routing ----------------------------------------------------------------------------------

    async def route_many(self, tasks: Sequence[AITask], run: RunInfo = RunInfo()) -> list[RoutedResult]:
        """Route many ready tasks at once; per-provider slots bound what is in flight."""
        return list(await asyncio.gather(*(self.route(t, run) for t in tasks)))

    async def route(
        self, task: AITask, run: RunInfo = RunInfo(), *, first_attempt: int = 1, durable: bool = True
    ) -> RoutedResult:
        """Try providers in order within the task's attempt budget; never raises for a provider's failure.

        With `durable` (the default) it returns once every attempt row is committed. A caller that wants to
        start dependent work on the answer at once passes `durable=False` and must await
        `result.committed()` before it reports the task complete.
        """
        if self.health is not None:
            self.health.ensure_started()  # checks run beside the first decisions, never in front of them
        if self._sync is not None:
            self._sync.ensure_started()
        strategy_name = str(task.metadata.get("strategy") or run.strategy)
        critical = task.priority is Priority.CRITICAL
        decision = self._planner.new_decision(task, strategy_name)
        result = RoutedResult(task_id=task.id, status=TaskStatus.FAILED)
        cache, team = self._cache, task.team or run.team
        key = cache.key_for(task, team) if cache is not None else None
        if cache is not None and key is not None:
            started, t0 = self._wall_clock(), self._clock()
            hit = await cache.find(key, team)
            if hit is not None:
                self._served_from_cache(task, run, strategy_name, first_attempt, key, hit, started, t0, result)
                decision.chosen = CACHE_PROVIDER
                decision.cache = DecisionCache(hit.run_id, hit.task_id, hit.provider_id, hit.cost_usd)
                result.draft = decision
                if durable:
                    await result.committed()
                return result
        plan = self._plan(task, run, strategy_name, critical, decision)
        try:
            if self._deferral is not None and task.metadata.get("deferrable") == "true":
                answered, first_attempt, waited = await self._deferred(
                    task, run, strategy_name, plan, first_attempt, result
                )
                if answered:
                    decision.chosen = result.provider_id
                    result.draft = decision
                    return result
                if waited:
                    # Perhaps for hours: providers, circuits, quotas and scores have moved on since the plan.
                    plan = self._plan(task, run, strategy_name, critical, decision)
            await self._run(task, run, strategy_name, critical, plan, first_attempt, result, decision, key)
            result.draft = decision
        finally:
            if durable:
                await result.committed()
        return result

    def _plan(
        self,
        task: AITask,
        run: RunInfo,
        strategy_name: str,
        critical: bool,
        decision: DecisionDraft | None = None,
        exclude: frozenset[str] | set[str] = frozenset(),
    ) -> Plan:
        if decision is None:
            decision = self._planner.new_decision(task, strategy_name)
        return self._planner.plan(task, run.run_id, strategy_name, critical, decision, exclude, task.team or run.team)

    async def _run(
        self,
        task: AITask,
        run: RunInfo,
        strategy: str,
        critical: bool,
        plan: Plan,
        first_attempt: int,
        result: RoutedResult,
        decision: DecisionDraft,
        cache_key: str | None = None,
    ) -> None:
        skipped = decision.skipped
        # Critical tasks are tried on every capable provider before failing: retries never crowd one out.
        allowed = max(task.max_attempts, len(plan.order)) if critical else task.max_attempts
        calls = 0
        attempt = first_attempt
        seen: set[str] = set()  # providers called or refused for this task
        previous_failed: str | None = None
        waited = False
        order, estimates = plan.order, plan.estimates
        while True:
            st = next((s for s in order if s.provider.provider_id not in seen), None)
            if st is None:
                # The plan ran out. If the task waited meanwhile, circuits, quotas and health may have moved on.
                if not waited or (calls >= task.max_attempts and not critical):
                    break
                plan = self._plan(task, run, strategy, critical, decision, exclude=seen)
                order, estimates, waited = plan.order, {**estimates, **plan.estimates}, False
                allowed = max(allowed, calls + len(order)) if critical else allowed
                continue
            if calls >= allowed and not critical:
                break
            provider_id = st.provider.provider_id
            seen.add(provider_id)
            calls_here = 0
            # Subscriptions of this provider whose own trouble this task met; the next call must use another.
            tried: set[str] = set()
            while True:
                ask_for = self._ask_for(st, task, run, estimates[provider_id], critical)
                admission = await self._admitter.admit(
                    st, task, run.run_id, estimates[provider_id], critical, tried, ask_for
                )
                waited = waited or admission.waited
                if admission.refusal is not None:
                    skipped[provider_id] = admission.refusal
                    # A rotation that found no subscription left: the failed call counts after all.
                    calls += 1 if tried else 0
                    break
                if calls_here == 0 and previous_failed is not None:
                    detail = {"from": previous_failed, "task_id": task.id}
                    self._emit(RoutingEvent(FAILOVER, provider_id, detail=detail))
                error = await self._call(
                    st,
                    task,
                    run,
                    strategy,
                    attempt,
                    estimates[provider_id],
                    result,
                    admission.subscription,
                    admission.reservation,
                    cache_key,
                )
                attempt += 1
                calls += 1
                calls_here += 1
                if error is None:
                    decision.chosen = provider_id
                    self.affinity.remember(task.affinity, provider_id)
                    return
                step = self._policy.decide(error, calls_here - len(tried))
                if isinstance(step, Rotate) and self._may_rotate(st, error, tried):
                    # Another subscription of the same provider, at once: not a failover, and it does not spend
                    # max_attempts (each subscription is tried at most once, which bounds it).
                    tried.add(error.subscription or "")
                    calls -= 1
                    continue
                if isinstance(step, Stop):
                    return
                if isinstance(step, Retry) and self._may_retry(critical, calls, task, allowed, order, seen):
                    await self._sleep(step.delay_s)
                    continue
                previous_failed = provider_id
                break
        if not result.attempts:
            self._nothing_could_take(task, run, result, decision)

    async def _deferred(
        self, task: AITask, run: RunInfo, strategy: str, plan: Plan, attempt: int, result: RoutedResult
    ) -> tuple[bool, int, bool]:
        """Try the first provider in the plan whose vendor batch API may take the task. Returns whether that ended
        the task (answered, or an error no other call can help), the attempt number live calls go on from, and
        whether the task waited in a vendor batch (then live calls need a fresh plan).

        The wait holds no provider slot (it may last hours): the vendor batch is the vendor's capacity, not the
        live endpoint's. Its attempt row records the batch price charged and the list price beside it."""
        deferral = self._deferral
        assert deferral is not None
        # The plan already left out providers the budget, circuits or quotas refuse: none of them gets the task.
        st = next((s for s in plan.order if deferral.takes(s.provider, task)), None)
        if st is None:
            return False, attempt, False
        provider = st.provider
        # Counted in the budgets (here and, with shared limits, in every process) from now: the vendor charges it.
        hold = await self._batch_budget.hold(
            deferral,
            provider,
            task,
            run_id=run.run_id,
            team=task.team or run.team,
            live_estimate=plan.estimates[provider.provider_id][1],
        )
        if hold is None:  # a budget has no room for it now: the live path waits for room or says which refused
            return False, attempt, False
        context = ExecutionContext(
            run_id=run.run_id, attempt=attempt, model=provider.model_for(task), timeout_s=provider.config.timeout_s
        )
        started, t0 = self._wall_clock(), self._clock()
        try:
            answer, vendor_batch_id = await deferral.call(provider, task, context)
        except asyncio.CancelledError:
            # Submitted: the vendor answers (and charges) it all the same, and the next start collects it; the
            # hold stays. Never submitted: nothing will be charged.
            if not deferral.submitted(task):
                self._batch_budget.settle(hold, run_id=run.run_id, charged=0.0)
            raise
        if answer is None:  # not answered in time: live calls, from the same attempt number
            self._batch_budget.settle(hold, run_id=run.run_id, charged=0.0)
            return False, attempt, True
        record = _attempt_start(
            task, run, provider.provider_id, attempt, strategy, started, vendor_batch_id=vendor_batch_id
        )
        if isinstance(answer, ProviderError):
            done = self._record(result, record, t0, outcome=answer.outcome, error=answer)
            result.outcome, result.error = answer.outcome, str(answer)
            self._batch_budget.settle(hold, run_id=run.run_id, charged=done.cost_usd)
            # The same judgement as after a live call: a request the vendor refused is refused live too.
            return isinstance(self._policy.decide(answer, 1), Stop), attempt + 1, True
        done = self._record(result, record, t0, outcome="success", response=answer)
        self._batch_budget.settle(hold, run_id=run.run_id, charged=done.cost_usd)
        result.status, result.provider_id, result.response = TaskStatus.COMPLETED, provider.provider_id, answer
        result.outcome = result.error = None
        return True, attempt + 1, True

    def _ask_for(
        self, st: ProviderState, task: AITask, run: RunInfo, estimate: tuple[float, float], critical: bool
    ) -> AskFor | None:
        asks = self._asks
        if asks is None:
            return None
        provider, team = st.provider, task.team or run.team
        list_cost = None
        if st.prices is None:  # priced by the provider itself: its list price may differ from the charge
            try:
                list_cost = provider.estimate_cost(task).list_price_usd
            except Exception:  # a plugin's bug must not escape route(); the planner already recorded it
                list_cost = None

        def ask_for(subscription: str | None) -> ReservationAsk | None:
            return asks.ask(
                provider,
                subscription,
                run_id=run.run_id,
                team=team,
                tokens=estimate[0],
                cost=estimate[1],
                critical=critical,
                list_cost=list_cost,
            )

        return ask_for

    @staticmethod
    def _may_rotate(st: ProviderState, error: ProviderError, tried: set[str]) -> bool:
        """Whether the provider has a subscription this task has not met trouble on besides `error`'s."""
        left = set(st.quota.subscriptions) - tried - {error.subscription}
        return bool(left)

    @staticmethod
    def _may_retry(
        critical: bool, calls: int, task: AITask, allowed: int, order: list[ProviderState], seen: set[str]
    ) -> bool:
        if calls >= task.max_attempts:
            return False
        if not critical:
            return True
        # A critical task's retry must leave room for one call on every provider it has not tried yet.
        untried = sum(1 for s in order if s.provider.provider_id not in seen)
        return calls + untried < allowed

    def _nothing_could_take(self, task: AITask, run: RunInfo, result: RoutedResult, decision: DecisionDraft) -> None:
        refused = decision.budget_refusals()
        if refused is not None:
            self._budget_refused(run, task, refused)
        reasons = "; ".join(f"{p}: {r}" for p, r in decision.skipped.items()) or "no providers configured"
        skipped = decision.skipped.values()
        if refused is None and skipped and all(isinstance(r, str) and is_quota_reason(r) for r in skipped):
            # Every provider out of quota or rate limited: a quota failure, counted apart (ledger.quota_failures).
            result.outcome = "quota_exhausted"
            result.error = f"{QUOTA_REFUSED} for task type {task.type!r} ({reasons})"
            return
        result.outcome = "budget_exceeded" if refused is not None else "unavailable"
        result.error = f"no provider can take task type {task.type!r} now ({reasons})" + self._when_open_ends(decision)

    def _when_open_ends(self, decision: DecisionDraft) -> str:
        """When the first of the open circuits that refused a task lets probes through: what to tell someone
        who resumed a run within `cooldown_s` of an outage."""
        ends = [
            until
            for pid, reason in decision.skipped.items()
            if reason == "circuit_open" and pid in self._states
            for until in (self._states[pid].breaker.open_until,)
            if until is not None
        ]
        if not ends:
            return ""
        wait_s = max(0.0, min(ends) - self._clock())
        at = utc_now() + timedelta(seconds=wait_s)
        return (
            f"; the first open circuit lets calls through again in {wait_s:.0f} s, at {at:%H:%M:%S} UTC: "
            "run it again then"
        )

    def _budget_refused(self, run: RunInfo, task: AITask, refused: list[BudgetRefusal]) -> None:
        """The budget refused a task all work: report it once per run (run budget) or per UTC day (day and team
        budgets), with what was spent and the limit. Every later refusal of the same budget is a set lookup."""
        day = utc_now().date().isoformat()
        for refusal in sorted(refused, key=lambda r: (r.scope, r.team or "")):
            scope = refusal.scope
            if scope == "team":
                key = (f"team:{refusal.team}", day)
                detail: dict[str, Any] = {
                    "scope": "team",
                    "team": refusal.team,
                    "run_id": run.run_id,
                    "limit_usd": refusal.cap,
                    "task_id": task.id,
                    "day": day,
                }
            else:
                key = (scope, run.run_id if scope == "run" else day)
                detail = self._budget_figures(scope, key[1], run, task)
            if key in self._budget_reported:
                continue
            self._budget_reported.add(key)
            self._emit(RoutingEvent(BUDGET_EXHAUSTED, detail=detail))

    def _budget_figures(self, scope: str, period: str, run: RunInfo, task: AITask) -> dict[str, Any]:
        budget, limits = self.budget, self.config.budget
        run_spent = budget.run_spent(run.run_id)
        if scope == "run":
            limit, spent = limits.max_cost_usd_per_run, run_spent
        else:
            # The day refused, so its room (spent only, nothing reserved) is the smaller: room = limit - spent.
            limit = limits.max_cost_usd_per_day
            spent = (limit or 0.0) - budget.room(run.run_id, reserved=False)
        detail: dict[str, Any] = {
            "scope": scope,
            "run_id": run.run_id,
            "spent_usd": round(spent, 6),
            "limit_usd": limit,
            "task_id": task.id,  # the first task it refused
        }
        if scope == "day":
            detail["day"] = period
        return detail

    def budget_reported(self, scope: str, period: str) -> None:
        """Mark a budget's exhaustion as already reported (e.g. the day's, by an earlier run in the ledger)."""
        self._budget_reported.add((scope, period))

    # --- one call ---------------------------------------------------------------------------------

    async def _call(
        self,
        st: ProviderState,
        task: AITask,
        run: RunInfo,
        strategy: str,
        attempt: int,
        estimate: tuple[float, float],
        result: RoutedResult,
        subscription: str | None,
        reservation: Ticket | None = None,
        cache_key: str | None = None,
    ) -> ProviderError | None:
        """One call on a slot `_admit` took; fills `result`, releases everything, returns the error or None."""
        provider = st.provider
        context = ExecutionContext(
            run_id=run.run_id,
            attempt=attempt,
            subscription=subscription,
            model=provider.model_for(task),
            timeout_s=provider.config.timeout_s,
            retry_max_s=self._policy.settings.retry_max_s,
        )
        # On the engine's clock, as circuits and windows are: a virtual clock (what-if replay, the outcome
        # benchmark) then measures simulated latencies, which fastest_response and adaptive learn from.
        started, t0 = self._wall_clock(), self._clock()
        # The cache key: a success is what a later identical task may be served.
        record = _attempt_start(task, run, provider.provider_id, attempt, strategy, started, cache_key=cache_key)
        error: ProviderError | None = None
        response: ProviderResponse | None = None
        done: AttemptRecord | None = None
        try:
            try:
                answer = await provider.execute_task(task, context)
                if not isinstance(answer, ProviderResponse):
                    raise not_a_response(provider, answer)
                # Before anything stores, prints or forwards it: a model may echo a credential it saw.
                scrubbed = provider.scrub(answer.text)
                response = answer if scrubbed == answer.text else answer.model_copy(update={"text": scrubbed})
            except ProviderError as exc:
                error = exc
            except Exception as exc:  # a provider's bug: recorded and failed over like an outage
                error = internal_error(provider, exc)
        except asyncio.CancelledError:
            done = self._record(result, record, t0, outcome="cancelled")
            result.status, result.outcome, result.error = TaskStatus.CANCELLED, "cancelled", "cancelled while calling"
            raise
        finally:
            try:
                if done is None:
                    # No answer and no error: interrupted by something other than cancellation.
                    outcome = error.outcome if error else "success" if response is not None else "cancelled"
                    done = self._record(result, record, t0, outcome=outcome, error=error, response=response)
            finally:
                # One subscription's own trouble says nothing about the provider's health: no circuit failure.
                scoped = error is not None and self._policy.subscription_scoped(error)
                self._release(st, run, estimate, done, subscription, scoped, reservation)
        if error is not None:
            st.quota.on_error(error)
            if error.outcome not in NOT_ABOUT_THE_PROVIDER:
                self.adaptive.observe(provider.provider_id, task.type, False, done.latency_ms, done.cost_usd)
            result.outcome, result.error, result.provider_id = error.outcome, str(error), None
            return error
        assert response is not None
        st.health.call_succeeded()
        st.quota.on_success(done.subscription, task.affinity)
        self.latency.observe(provider.provider_id, task.type, done.latency_ms)
        self.adaptive.observe(provider.provider_id, task.type, True, done.latency_ms, done.cost_usd)
        result.status, result.provider_id, result.response = TaskStatus.COMPLETED, provider.provider_id, response
        result.outcome = result.error = None
        return None

    def _release(
        self,
        st: ProviderState,
        run: RunInfo,
        estimate: tuple[float, float],
        done: AttemptRecord | None,
        counted: str | None,
        scoped: bool = False,
        reservation: Ticket | None = None,
    ) -> None:
        """Give back the slot, the breaker's in-flight count and the budget reservation; count the usage.

        `done` is None only if recording itself failed; the slot is released all the same. `scoped`: the call
        failed on its subscription's own trouble, which does not count against the provider's circuit."""
        outcome = done.outcome if done is not None else "cancelled"
        if outcome == "success":
            st.breaker.succeed()
        elif outcome in HEALTH_FAILURES and not scoped:
            st.breaker.fail()
        else:
            st.breaker.abandon()
        tokens = done.usage.total if done is not None else 0
        cost = done.cost_usd if done is not None else 0.0
        # Limits count usage: a subscription login's call at its list price (a login's `cost_usd_per_day` caps
        # how much of it is used); budgets count what is charged.
        used = done.list_price if done is not None else 0.0
        st.quota.settle(tokens, used, subscription=done.subscription if done else None, counted=counted)
        if self.budget.active:
            self.budget.settle(run.run_id, estimate[1], cost)
            self._admitter.budget_settled()
        if reservation is not None and self.shared is not None:
            self.shared.settle(reservation, requests=1, tokens=tokens, cost=cost, list_cost=used)
        st.gate.leave()

    def _served_from_cache(
        self,
        task: AITask,
        run: RunInfo,
        strategy: str,
        attempt: int,
        key: str,
        hit: CachedAnswer,
        started: datetime,
        t0: float,
        result: RoutedResult,
    ) -> None:
        """Complete the task with a cached answer: an attempt on no provider, free, marked a cache hit."""
        record = AttemptRecord(
            run_id=run.run_id,
            task_id=task.id,
            provider_id=CACHE_PROVIDER,
            task_type=task.type,
            attempt=attempt,
            outcome="success",
            started_at=started,
            finished_at=self._wall_clock(),
            model=hit.model,
            team=task.team or run.team,
            strategy=strategy,
            latency_ms=(self._clock() - t0) * 1000,
            output=hit.output,
            cache_key=key,
            cache_hit=True,
            cache_source=hit.source,
            cache_saved_usd=hit.cost_usd,
        )
        self._keep(result, record)
        metadata = {"cache": {"run_id": hit.run_id, "task_id": hit.task_id, "provider_id": hit.provider_id}}
        result.response = ProviderResponse(text=hit.output, model=hit.model or "", metadata=metadata)
        result.status, result.provider_id = TaskStatus.COMPLETED, CACHE_PROVIDER

    def _record(
        self,
        result: RoutedResult,
        record: dict[str, Any],
        t0: float,
        *,
        outcome: str,
        error: ProviderError | None = None,
        response: ProviderResponse | None = None,
    ) -> AttemptRecord:
        latency_ms = (self._clock() - t0) * 1000
        attempt = attempt_record(
            record, latency_ms, finished_at=self._wall_clock(), outcome=outcome, error=error, response=response
        )
        self._keep(result, attempt)
        return attempt

    def _keep(self, result: RoutedResult, attempt: AttemptRecord) -> None:
        """Add the attempt to the result and hand it to the ledger (its commit joins the result's pending ones)."""
        result.attempts.append(attempt)
        if self._recorder is not None:
            try:
                committed = self._recorder(attempt)
            except Exception:  # the slot must still be released; the writer's own error surfaces on commit
                log.exception("could not hand attempt %s to the ledger", attempt.idempotency_key)
                raise
            if committed is not None:
                result.pending_commits.append(committed)

    # --- helpers ----------------------------------------------------------------------------------

    def _waker(self, provider_id: str) -> Callable[[], None]:
        """Wake the provider's waiters so they look again (its circuit or health changed)."""

        def wake() -> None:
            st = self._states.get(provider_id)
            if st is not None:
                st.gate.wake_all()

        return wake

    def _circuit_observer(self, provider_id: str) -> Callable[[CircuitState, CircuitState], None]:
        wake = self._waker(provider_id)

        def changed(old: CircuitState, new: CircuitState) -> None:
            wake()  # closed: more may go; open: waiters move on
            kind = _CIRCUIT_EVENTS.get(new)
            if kind is not None:
                self._emit(RoutingEvent(kind, provider_id, detail={"from": str(old), "to": str(new)}))

        return changed

    def _emit(self, event: RoutingEvent) -> None:
        if self._observer is not None:
            self._observer(event)


def _attempt_start(
    task: AITask, run: RunInfo, provider_id: str, attempt: int, strategy: str, started: datetime, **extra: Any
) -> dict[str, Any]:
    """What an attempt's ledger row knows when its call starts (live or through a vendor batch); `attempt_record`
    completes it when the call ends."""
    return {
        "run_id": run.run_id,
        "task_id": task.id,
        "provider_id": provider_id,
        "task_type": task.type,
        "attempt": attempt,
        "team": task.team or run.team,
        "strategy": strategy,
        "started_at": started,
        **extra,
    }
