"""Plain records that cross the ledger's boundary (routing writes them; batches, flows, analytics read them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, model_serializer

from providers import TokenUsage

# The provider id of an attempt served from the response cache (no provider was called; routing.cache).
CACHE_PROVIDER = "cache"


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True)


class TaskStatus(StrEnum):
    """A task's state in a run; the values are what the ledger stores and `--json` prints."""

    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


class RunStatus(StrEnum):
    """A run's state; `interrupted` is a run stopped with Ctrl-C, `cancelled` one whose flow run was cancelled in
    Prefect; both are resumed by running their spec again."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    CANCELLED = "cancelled"


# The decision's parts are plain frozen dataclasses: the router builds one per routed task.
@dataclass(frozen=True, slots=True)
class DecisionEstimate:
    """What every plan of a task priced and admitted it by (a what-if replay prices it the same)."""

    prompt_tokens: int
    max_output_tokens: int


@dataclass(frozen=True, slots=True)
class DecisionAffinity:
    """The task's affinity key and the provider it stuck to when the task was planned (None: no one yet)."""

    key: str
    sticky: str | None = None


@dataclass(frozen=True, slots=True)
class DecisionPreference:
    """The provider or model the task asked for, and whether routing tried it first (`reason` says why not)."""

    provider: str | None = None
    model: str | None = None
    honored: bool = False
    reason: str = ""


@dataclass(frozen=True, slots=True)
class DecisionCache:
    """Where a task served from the response cache got its answer, and what that answer cost then (saved now)."""

    run_id: str
    task_id: str
    provider_id: str
    saved_usd: float = 0.0


class RouteDecision(_Record):
    """How the routing step chose a provider for a task (DESIGN.md: the task's `decision`, `--explain`).

    Built by the router, stored as JSON in `tasks.decision` and read back as this model. `skipped` maps each
    provider left out to why (`capability`, `circuit_open`, `quota: ...`, `budget: ...`); `order` is the
    strategy's order of the rest; `chosen` the provider that answered, None when none did. `estimate`,
    `affinity`, `preference` (the provider or model the task asked for) and `cache` (the answer it was served
    from, a cache hit's) are left out of the JSON when absent (decisions recorded before estimates were, tasks
    without an affinity key or a preference, tasks a provider answered), as they always were. `document()` is
    that JSON, and what `model_dump()` gives.
    """

    strategy: str
    candidates: tuple[str, ...] = ()
    skipped: dict[str, str] = Field(default_factory=dict)
    order: tuple[str, ...] = ()
    chosen: str | None = None
    estimate: DecisionEstimate | None = None
    affinity: DecisionAffinity | None = None
    preference: DecisionPreference | None = None
    cache: DecisionCache | None = None

    @model_serializer(mode="plain")
    def document(self) -> dict[str, Any]:
        """The decision as JSON values, in the order the CLI prints them (the ledger stores it with no more work)."""
        doc: dict[str, Any] = {
            "strategy": self.strategy,
            "candidates": list(self.candidates),
            "skipped": dict(self.skipped),
            "order": list(self.order),
            "chosen": self.chosen,
        }
        if self.estimate is not None:
            doc["estimate"] = {
                "prompt_tokens": self.estimate.prompt_tokens,
                "max_output_tokens": self.estimate.max_output_tokens,
            }
        if self.affinity is not None:
            doc["affinity"] = {"key": self.affinity.key, "sticky": self.affinity.sticky}
        if self.preference is not None:
            p = self.preference
            doc["preference"] = {"provider": p.provider, "model": p.model, "honored": p.honored, "reason": p.reason}
        if self.cache is not None:
            c = self.cache
            doc["cache"] = {
                "run_id": c.run_id,
                "task_id": c.task_id,
                "provider_id": c.provider_id,
                "saved_usd": c.saved_usd,
            }
        return doc


class AttemptRecord(_Record):
    """One provider call attempt, as stored in `provider_usage`."""

    run_id: str
    task_id: str
    provider_id: str
    task_type: str
    attempt: int
    outcome: str
    started_at: datetime
    finished_at: datetime
    subscription: str | None = None
    model: str | None = None
    team: str | None = None
    strategy: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    usage: TokenUsage = TokenUsage()
    # Charged at the margin (budgets and reports' cost count it).
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    output: str | None = None
    # The call at list price when that differs from `cost_usd` (a subscription login's call is charged 0); None:
    # the same as `cost_usd`. See `list_price`.
    list_price_usd: float | None = None
    # The response cache's key of the task (routing.cache; None when the cache is off for it); a cache hit's row
    # has `cache_hit`, provider CACHE_PROVIDER, no cost and no tokens, and says which attempt it came from
    # (`cache_source`, that attempt's idempotency key) and what that attempt cost (`cache_saved_usd`).
    cache_key: str | None = None
    cache_hit: bool = False
    cache_source: str | None = None
    cache_saved_usd: float | None = None
    # The vendor batch API's batch the attempt went through (batches.deferred); None for a live call.
    vendor_batch_id: str | None = None

    @property
    def list_price(self) -> float:
        """The call at list price, whether or not it was charged."""
        return self.cost_usd if self.list_price_usd is None else self.list_price_usd

    @property
    def idempotency_key(self) -> str:
        return f"{self.run_id}:{self.task_id}:{self.attempt}"


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """A successful attempt the response cache may serve: its answer, who gave it, and what it cost."""

    run_id: str
    task_id: str
    attempt: int
    provider_id: str
    model: str | None
    output: str
    cost_usd: float
    finished_at: datetime

    @property
    def source(self) -> str:
        """The attempt's idempotency key."""
        return f"{self.run_id}:{self.task_id}:{self.attempt}"


class TaskState(_Record):
    run_id: str
    task_id: str
    task_type: str
    priority: str
    team: str | None
    status: TaskStatus
    provider_id: str | None
    output: str | None
    error: str | None
    decision: RouteDecision | None
    position: int


class RunRecord(_Record):
    run_id: str
    batch_name: str
    batch_hash: str
    team: str | None
    status: RunStatus
    flow_run_id: str | None
    strategy: str | None
    started_at: datetime
    finished_at: datetime | None
    owner: str | None = None
    heartbeat_at: datetime | None = None


class TaskOutcome(_Record):
    """A task's final state, written in bulk by chunked batches."""

    task_id: str
    status: TaskStatus
    provider_id: str | None = None
    output: str | None = None
    error: str | None = None
    decision: RouteDecision | None = None


class UsagePoint(NamedTuple):
    provider_id: str
    started_at: datetime
    tokens: int
    cost_usd: float
    subscription: str | None = None


class NewTask(_Record):
    """A task to register when a run starts."""

    task_id: str
    task_type: str
    priority: str
    team: str | None = None


@dataclass(frozen=True, slots=True)
class HistoryRecord:
    """Attempts of one provider on one task type since some moment, aggregated (the adaptive strategy's input).

    Attempts that fail through the caller's own fault are left out. `latency_ms` and `cost_usd` are the means
    over successful attempts; None when nothing succeeded (or not measured).
    """

    provider_id: str
    task_type: str
    attempts: int
    successes: int
    latency_ms: float | None = None
    cost_usd: float | None = None


class ProviderEventRecord(_Record):
    """A row of `provider_events`: a circuit, quota, budget or health change. `detail` is the JSON document the
    event's kind defines (routing.events says what each kind carries)."""

    provider_id: str
    subscription: str | None
    kind: str
    detail: dict[str, Any] | None
    at: datetime


class ProviderRecord(_Record):
    """A row of `providers`: a provider's registration (config without secrets, capabilities) and last health."""

    provider_id: str
    type: str
    status: str
    priority: int
    config: dict[str, Any] | None
    capabilities: dict[str, Any] | None
    health: dict[str, Any] | None
    updated_at: datetime | None
