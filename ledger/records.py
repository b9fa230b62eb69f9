"""Plain records that cross the ledger's boundary (routing writes them, flows and analytics read them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict

from providers import TokenUsage


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True)


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
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    output: str | None = None

    @property
    def idempotency_key(self) -> str:
        return f"{self.run_id}:{self.task_id}:{self.attempt}"


class TaskState(_Record):
    run_id: str
    task_id: str
    task_type: str
    priority: str
    team: str | None
    status: str
    provider_id: str | None
    output: str | None
    error: str | None
    decision: dict[str, Any] | None
    position: int


class RunRecord(_Record):
    run_id: str
    batch_name: str
    batch_hash: str
    team: str | None
    status: str
    flow_run_id: str | None
    strategy: str | None
    started_at: datetime
    finished_at: datetime | None
    owner: str | None = None
    heartbeat_at: datetime | None = None


class TaskOutcome(_Record):
    """A task's final state, written in bulk by chunked batches."""

    task_id: str
    status: str
    provider_id: str | None = None
    output: str | None = None
    error: str | None = None
    decision: dict[str, Any] | None = None


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
