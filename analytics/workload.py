"""The recorded workload a what-if replay runs: one item per task with an attempt in a window.

Built from plain ledger records (attempt rows, and per task its priority and routing decision); the replay
itself, through the routing engine, lives in `planning/replay.py`. For each task the replay needs what the
engine saw when it routed the task, so that estimates, `cost_based` order and budget and quota admission come
out the same:

- `prompt_tokens` and `max_output_tokens`: the estimate recorded in the task's decision (`estimate`) when
  there is one; else the prompt size the provider counted on the successful attempt (input + cache read +
  cache write tokens) and the spec's default answer length;
- `usage`: the successful attempt's tokens; for a task that never succeeded, the median tokens of the
  successful tasks of its type (else of all types), so a what-if in which it would now succeed is priced;
- `calls`: per provider, the outcomes and latencies of the task's recorded calls there, in order, which the
  replay plays back exactly; only calls a provider never got for the task are drawn from its error rate.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from analytics.outcomes import SUCCESS, counts_for_provider
from ledger import AttemptRecord, RouteDecision
from providers import TokenUsage

# Attempts that say nothing about the task or the provider: an interruption, or the router's own budget.
_NOT_REPLAYED = frozenset({"cancelled", "budget_exceeded"})
CALLER_ERROR = "bad_request"


@dataclass(frozen=True, slots=True)
class RecordedCall:
    """One recorded call of a task on a provider: what the replay plays back for the same call."""

    outcome: str
    latency_ms: float
    usage: TokenUsage = field(default_factory=TokenUsage)
    cost_usd: float = 0.0


@dataclass(frozen=True, slots=True)
class TaskFacts:
    """What the tasks table and the routing decision recorded about a task."""

    priority: str = "normal"
    prompt_tokens: int | None = None
    max_output_tokens: int | None = None
    affinity: str | None = None
    # The task's own strategy, when it overrode the run's (a spec task's `strategy`).
    strategy: str | None = None


@dataclass(frozen=True, slots=True)
class WorkItem:
    run_id: str
    task_id: str
    task_type: str
    team: str | None
    priority: str
    usage: TokenUsage
    usage_estimated: bool  # True when the task never succeeded and `usage` is its type's median
    prompt_tokens: int
    max_output_tokens: int
    estimate_recorded: bool  # True when the prompt estimate came from the task's decision record
    affinity: str | None
    strategy: str | None
    offset_s: float  # seconds after the window's start when the task first started
    calls: Mapping[str, tuple[RecordedCall, ...]] = field(default_factory=dict)
    # It failed with bad_request: the request itself was wrong, on any provider.
    caller_error: bool = False


@dataclass
class ProviderProfile:
    """What the ledger says about one provider's behaviour (attempts that count for it only), overall and per
    task type (`by_type`: a provider can be reliable on summaries and fail most bug fixes)."""

    latencies_ms: list[float] = field(default_factory=list)
    attempts: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    cost: float = 0.0
    tokens: int = 0
    by_type: dict[str, ProviderProfile] = field(default_factory=dict)

    def count(self, a: AttemptRecord) -> None:
        """Fold one attempt in (one that counts for the provider)."""
        self.attempts += 1
        if a.outcome == SUCCESS:
            self.latencies_ms.append(a.latency_ms)
            self.cost += a.cost_usd
            self.tokens += a.usage.total
        else:
            self.failures[a.outcome] += 1

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
    # Quota events the ledger recorded in the window: {"provider", "kind", "at", ...} like the predicted ones.
    recorded_quota_events: list[dict[str, Any]] = field(default_factory=list)


def facts_from_decision(priority: str, decision: RouteDecision | None, run_strategy: str | None) -> TaskFacts:
    """TaskFacts from a tasks-table row: its priority and its routing decision (DESIGN.md "The ledger")."""
    if decision is None:
        return TaskFacts(priority=priority)
    estimate, strategy = decision.estimate, decision.strategy
    return TaskFacts(
        priority=priority,
        prompt_tokens=_positive_int(estimate.prompt_tokens) if estimate else None,
        max_output_tokens=_positive_int(estimate.max_output_tokens) if estimate else None,
        affinity=decision.affinity.key if decision.affinity else None,
        strategy=strategy if strategy and run_strategy and strategy != run_strategy else None,
    )


def _positive_int(value: int) -> int | None:
    return value if value >= 1 else None


def prompt_size(usage: TokenUsage) -> int:
    """The whole prompt as the provider counted it (input excludes cache reads and writes)."""
    return usage.input + usage.cache_read + usage.cache_write


def build_workload(
    since: datetime,
    until: datetime,
    attempts: list[AttemptRecord],
    facts: Mapping[tuple[str, str], TaskFacts],
    *,
    default_max_output_tokens: int,
    quota_events: Iterable[dict[str, Any]] = (),
) -> Workload:
    """The tasks and provider behaviour recorded in [since, until); see the module doc for each estimate."""
    # A task the response cache answered called no provider, and would be answered the same way (free) under any
    # strategy: it is no work to replay, and `cache` no provider to learn.
    attempts = [a for a in attempts if not a.cache_hit]
    by_task: dict[tuple[str, str], list[AttemptRecord]] = defaultdict(list)
    profiles: dict[str, ProviderProfile] = defaultdict(ProviderProfile)
    for a in attempts:
        by_task[(a.run_id, a.task_id)].append(a)
        if not counts_for_provider(a.outcome):
            continue
        profile = profiles[a.provider_id]
        profile.count(a)
        of_type = profile.by_type.get(a.task_type)
        if of_type is None:
            of_type = profile.by_type[a.task_type] = ProviderProfile()
        of_type.count(a)
    served = {key: next((a for a in rows if a.outcome == SUCCESS), None) for key, rows in by_task.items()}
    by_type, overall = _median_usage_by_type([a for a in served.values() if a is not None])
    items = []
    for key, rows in by_task.items():
        rows.sort(key=lambda a: a.attempt)
        info = facts.get(key, TaskFacts())
        success = served[key]
        usage = success.usage if success is not None else by_type.get(rows[0].task_type, overall)
        max_output = info.max_output_tokens or default_max_output_tokens
        if usage is None:  # nothing in the window ever succeeded: the engine's own estimate is all there is
            usage = TokenUsage(input=info.prompt_tokens or 1, output=max_output)
        items.append(
            WorkItem(
                run_id=key[0],
                task_id=key[1],
                task_type=(success or rows[-1]).task_type,
                team=(success or rows[-1]).team,
                priority=info.priority,
                usage=usage,
                usage_estimated=success is None,
                prompt_tokens=info.prompt_tokens or max(1, prompt_size(usage)),
                max_output_tokens=max_output,
                estimate_recorded=info.prompt_tokens is not None,
                affinity=info.affinity,
                strategy=info.strategy,
                offset_s=(min(a.started_at for a in rows) - since).total_seconds(),
                calls=_calls(rows),
                caller_error=success is None and any(a.outcome == CALLER_ERROR for a in rows),
            )
        )
    items.sort(key=lambda item: (item.offset_s, item.run_id, item.task_id))
    return Workload(since, until, items, attempts, dict(profiles), list(quota_events))


def _calls(rows: list[AttemptRecord]) -> dict[str, tuple[RecordedCall, ...]]:
    calls: dict[str, list[RecordedCall]] = defaultdict(list)
    for a in rows:
        if a.outcome not in _NOT_REPLAYED:
            calls[a.provider_id].append(RecordedCall(a.outcome, a.latency_ms, a.usage, a.cost_usd))
    return {provider: tuple(made) for provider, made in calls.items()}


def _median_usage_by_type(served: list[AttemptRecord]) -> tuple[dict[str, TokenUsage], TokenUsage | None]:
    """Median tokens of the successful attempts per task type, and over all types (None when there are none)."""
    per_type: dict[str, list[TokenUsage]] = defaultdict(list)
    for a in served:
        per_type[a.task_type].append(a.usage)
    overall = _median_usage([a.usage for a in served]) if served else None
    return {t: _median_usage(u) for t, u in per_type.items()}, overall


def _median_usage(usages: list[TokenUsage]) -> TokenUsage:
    def median(values: list[int]) -> int:
        return round(statistics.median(values))

    return TokenUsage(
        input=median([u.input for u in usages]),
        output=median([u.output for u in usages]),
        cache_read=median([u.cache_read for u in usages]),
        cache_write=median([u.cache_write for u in usages]),
        reasoning=median([u.reasoning for u in usages]),
    )
