"""Planning a task's route: filter the providers that can take it now and order the rest.

    filter   the task's team's `allowed_providers`, capability, availability, open circuit, health, quota
             (critical tasks may use the reserve), the budget already spent (reservations of calls in flight
             are left to admission, which waits for them)
    order    the strategy's order; the team's `prefer` list first, in its order; providers past
             `switch_threshold` of a limit go last; the provider that served the task's affinity key goes first;
             the provider or model the task itself prefers first of all

Runs for every decision, so plain loops over precomputed per-provider facts, no pydantic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ledger import DecisionPreference
from providers import AITask, HealthStatus, estimate_prompt_tokens
from routing.affinity import AffinityMap
from routing.budget import BudgetGuard
from routing.circuit import CircuitState
from routing.config import TeamSettings
from routing.decision import DecisionDraft, Refusal
from routing.provider_state import ProviderState
from routing.stats import AdaptiveScores, LatencyStats
from routing.strategies import Candidate, Strategy, make_strategy

_UNHEALTHY = HealthStatus.UNHEALTHY
_OPEN = CircuitState.OPEN


@dataclass(slots=True)
class Plan:
    order: list[ProviderState]
    # provider id -> (estimated tokens, estimated cost) of this task there
    estimates: dict[str, tuple[float, float]]


class Planner:
    """Reads the engine's live state (loop-confined); holds only the strategies' own state."""

    def __init__(
        self,
        states: dict[str, ProviderState],
        latency: LatencyStats,
        adaptive: AdaptiveScores,
        budget: BudgetGuard,
        affinity: AffinityMap,
        strategies: Mapping[str, Strategy] | None = None,
        teams: Mapping[str, TeamSettings] | None = None,
    ) -> None:
        self._states = states
        self.teams: Mapping[str, TeamSettings] = teams or {}
        self._latency = latency
        self._adaptive = adaptive
        self._budget = budget
        self._affinity = affinity
        # Strategies by name, made on first use; given ones (e.g. an `Adaptive` with a seeded random source, for a
        # benchmark that must repeat) are used as they are.
        self._strategies: dict[str, Strategy] = dict(strategies or {})

    def new_decision(self, task: AITask, strategy_name: str) -> DecisionDraft:
        """The task's decision, filled in by its plans and calls."""
        # The estimate every plan of this task prices and admits it by; recorded, a what-if replay sees the same.
        draft = DecisionDraft(strategy_name, estimate_prompt_tokens(task), task.max_output_tokens)
        if task.affinity:
            draft.affinity_key, draft.sticky = task.affinity, self._affinity.get(task.affinity)
        return draft

    def plan(
        self,
        task: AITask,
        run_id: str,
        strategy_name: str,
        critical: bool,
        decision: DecisionDraft,
        exclude: frozenset[str] | set[str] = frozenset(),
        team: str | None = None,
    ) -> Plan:
        """The providers that can take `task` now, best first; skipped ones land in `decision` with why.

        `exclude` (providers this task already tried) are left out silently: a later plan of the same task.
        """
        # This runs for every decision: plain loops and precomputed per-provider facts, no pydantic.
        strategy = self._strategy(strategy_name)
        wants_latency = strategy_name == "fastest_response"
        wants_score = strategy_name == "adaptive"
        wants_rate = strategy_name == "cost_based"
        prompt_tokens = decision.prompt_tokens
        output_tokens = decision.max_output_tokens
        # Money reserved by calls in flight may settle lower: that is checked (and waited for) at the call.
        budget_room = self._budget.room(run_id, reserved=False) if self._budget.active else None
        candidates: list[Candidate] = []
        skipped = decision.skipped
        estimates: dict[str, tuple[float, float]] = {}
        task_type = task.type
        settings = self.teams.get(team) if team else None
        allowed = settings.allowed_providers if settings is not None else None
        for provider_id, st in self._states.items():
            if provider_id in exclude:
                continue
            if allowed is not None and provider_id not in allowed:
                skipped[provider_id] = f"not allowed for team {team}"
                continue
            if not st.available:
                skipped[provider_id] = "unavailable"
                continue
            if st.task_types is not None and task_type not in st.task_types:
                skipped[provider_id] = "capability"
                continue
            # Only an open circuit excludes; unknown and half-open ones admit probes, and tasks wait for them.
            if st.breaker.state is _OPEN:
                skipped[provider_id] = "circuit_open"
                continue
            if st.health.status is _UNHEALTHY:
                skipped[provider_id] = st.health.refusal() or "unhealthy"
                continue
            if st.quota.input_tokens_limit is not None:
                too_large = st.quota.too_large(prompt_tokens)
                if too_large is not None:
                    skipped[provider_id] = too_large
                    continue
            if st.prices is None:
                try:
                    estimate = st.provider.estimate_cost(task)
                except Exception as exc:  # a plugin's bug must not escape route()
                    skipped[provider_id] = f"internal:{type(exc).__name__} (estimate_cost)"
                    continue
                tokens, cost = estimate.tokens_input + estimate.tokens_output, estimate.cost_usd
                # Cost limits count usage at list price (a subscription login's call is charged 0 but uses it).
                used = cost if estimate.list_price_usd is None else estimate.list_price_usd
            else:
                tokens = prompt_tokens + output_tokens
                used = cost = (prompt_tokens * st.prices[0] + output_tokens * st.prices[1]) / 1_000_000
            estimates[provider_id] = (tokens, cost)
            reason: Refusal | None = st.quota.refusal(tokens, used, critical=critical)
            if reason is None and budget_room is not None and cost > budget_room:
                reason = self._budget.refusal(run_id, cost, reserved=False)
            if reason is not None:
                skipped[provider_id] = reason
                continue
            if exclude:  # a later plan: a provider skipped before may be fine now
                skipped.pop(provider_id, None)
            candidates.append(
                Candidate(
                    provider_id,
                    st.priority,
                    # Load is what is in flight plus what already queues for a slot, so that tasks planned while
                    # every provider is busy spread their waiting over all of them.
                    st.gate.in_use + st.gate.waiting,
                    st.gate.limit,
                    self._latency.get(provider_id, task_type) if wants_latency else None,
                    cost,
                    st.capability_match,
                    self._adaptive.get(provider_id, task_type) if wants_score else None,
                    st.index,
                    self._adaptive.success_rate(provider_id, task_type) if wants_rate else None,
                )
            )
        states = self._states
        ordered = [states[c.provider_id] for c in strategy.order(candidates, task_type)]
        if settings is not None and settings.prefer:
            rank = {provider_id: i for i, provider_id in enumerate(settings.prefer)}
            last = len(rank)
            ordered.sort(key=lambda st: rank.get(st.provider.provider_id, last))  # stable: the rest keep their order
        # Stable: providers near a limit keep their relative order but come after the others.
        if any(st.quota.watched for st in ordered):
            ordered.sort(key=lambda st: st.quota.over_threshold())
        sticky = self._affinity.get(task.affinity)
        if sticky is not None:
            ordered.sort(key=lambda st: st.provider.provider_id != sticky)
        metadata = task.metadata
        if metadata and (metadata.get("provider") or metadata.get("model")) and decision.preference is None:
            decision.preference = self._prefer(ordered, metadata.get("provider"), metadata.get("model"), skipped)
        if not decision.order and not decision.candidates:
            decision.candidates = [c.provider_id for c in candidates]
            decision.order = [st.provider.provider_id for st in ordered]
        else:  # a later plan of the same task: add what is new
            known, listed = decision.candidates, decision.order
            known.extend(c.provider_id for c in candidates if c.provider_id not in known)
            listed.extend(st.provider.provider_id for st in ordered if st.provider.provider_id not in listed)
        return Plan(ordered, estimates)

    def _prefer(
        self, ordered: list[ProviderState], provider: str | None, model: str | None, skipped: dict[str, Refusal]
    ) -> DecisionPreference:
        """Put the provider the task prefers (or the first that serves the model it prefers) first, when it can
        take the task now; else leave the order as it is and say why."""
        for index, st in enumerate(ordered):
            if provider is not None and st.provider.provider_id != provider:
                continue
            if model is not None and not _serves_model(st, model):
                continue
            ordered.insert(0, ordered.pop(index))
            return DecisionPreference(provider, model, honored=True, reason="tried first")
        if provider is not None and provider in skipped:
            reason = f"{provider} cannot take the task now ({skipped[provider]})"
        elif provider is not None and provider not in self._states:
            reason = f"no provider {provider!r} is configured"
        elif provider is not None:
            reason = f"{provider} does not serve model {model!r}"
        else:
            reason = f"no provider that can take the task now serves model {model!r}"
        return DecisionPreference(provider, model, honored=False, reason=reason + "; routed as usual")

    def _strategy(self, name: str) -> Strategy:
        strategy = self._strategies.get(name)
        if strategy is None:
            strategy = self._strategies[name] = make_strategy(name)
        return strategy


def _serves_model(st: ProviderState, model: str) -> bool:
    """Whether the provider is configured with `model` or lists it among its models."""
    provider = st.provider
    return provider.config.model == model or model in provider.capabilities().models
