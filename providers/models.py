"""Frozen value objects passed between providers, the router and the ledger."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# The task types Switchboard itself knows (the examples, the mock's texts, `config validate`'s spell check of
# `capabilities`). A batch may use any other type; providers that list no capabilities serve it.
TASK_TYPES: tuple[str, ...] = (
    "code_review",
    "pr_review",
    "bug_fix",
    "code_analysis",
    "feature",
    "summarization",
    "documentation",
    "testing",
)


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """Larger is more urgent; used to order queues."""
        return _PRIORITY_RANK[self]


_PRIORITY_RANK = {Priority.LOW: 0, Priority.NORMAL: 1, Priority.HIGH: 2, Priority.CRITICAL: 3}


class AITask(_Frozen):
    """One unit of AI work as a provider sees it."""

    id: str
    type: str
    prompt: str
    priority: Priority = Priority.NORMAL
    max_attempts: int = Field(default=3, ge=1)
    affinity: str | None = None
    team: str | None = None
    workdir: str | None = None
    # Outputs of the upstream tasks this one depends on, keyed by their task id.
    context: dict[str, str] = Field(default_factory=dict)
    # Expected answer length; providers use it to estimate cost before calling.
    max_output_tokens: int = Field(default=1024, ge=1)
    # False: never answered from the response cache, nor stored for later tasks to reuse (routing.cache).
    cache: bool = True
    metadata: dict[str, Any] = Field(default_factory=dict)


class ExecutionContext(_Frozen):
    """What a provider needs to know about the call besides the task itself."""

    run_id: str = "adhoc"
    attempt: int = Field(default=1, ge=1)
    subscription: str | None = None
    # The model tier routing chose for this call (None: the provider's configured `model`).
    model: str | None = None
    timeout_s: float | None = None
    # The longest wait worth spending on this provider (routing's failover `retry_max_s`): a provider that retries
    # by itself (the Claude CLI) stops once asked to wait longer, so routing can move on. None: no router's say.
    retry_max_s: float | None = Field(default=None, ge=0)


class TokenUsage(_Frozen):
    """Token counts, normalised across vendors.

    `input` excludes cache reads and writes (Anthropic's convention; OpenAI's `prompt_tokens` include cached
    tokens, so providers subtract them). `output` includes reasoning tokens; `reasoning` is the subset.
    """

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    reasoning: int = 0

    @property
    def total(self) -> int:
        return self.input + self.output + self.cache_read + self.cache_write


class Price(_Frozen):
    """USD per million tokens of each kind; cache reads and writes cost the input price unless priced apart (as
    providers bill). The one price type: providers bill with it, routing estimates with it, reports compare it."""

    input: float = Field(default=0.0, ge=0)
    output: float = Field(default=0.0, ge=0)
    cache_read: float | None = Field(default=None, ge=0)
    cache_write: float | None = Field(default=None, ge=0)

    def per_kind(self) -> dict[str, float]:
        """USD per million tokens for `input`, `output`, `cache_read` and `cache_write`, cache prices filled in."""
        return {
            "input": self.input,
            "output": self.output,
            "cache_read": self.input if self.cache_read is None else self.cache_read,
            "cache_write": self.input if self.cache_write is None else self.cache_write,
        }

    def cost(self, usage: TokenUsage) -> float:
        cache_read = self.input if self.cache_read is None else self.cache_read
        cache_write = self.input if self.cache_write is None else self.cache_write
        return (
            usage.input * self.input
            + usage.output * self.output
            + usage.cache_read * cache_read
            + usage.cache_write * cache_write
        ) / 1_000_000


class ProviderResponse(_Frozen):
    text: str
    model: str
    usage: TokenUsage = TokenUsage()
    # What the call is charged at the margin: what budgets, `cost_based` and reports' cost count.
    cost_usd: float = 0.0
    # The call at list price, when that differs from what it is charged: a call on a subscription login (paid for
    # by its fixed fee) is charged 0 and keeps here what the CLI reports it would cost on the API. None: the same.
    list_price_usd: float | None = None
    latency_ms: float = 0.0
    subscription: str | None = None
    finish_reason: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class ProviderCapabilities(_Frozen):
    # None means every task type.
    task_types: frozenset[str] | None = None
    models: tuple[str, ...] = ()
    max_concurrency: int = 4
    supports_workdir: bool = False
    # Installed and configured; a temporary shortage of quota does not change it (routers read it once).
    available: bool = True
    # Set while every quota behind the provider is used up (e.g. all `claude_cli` subscriptions are out): the
    # earliest moment (UTC) one can take a call again.
    exhausted_until: datetime | None = None

    def serves(self, task_type: str) -> bool:
        return self.available and (self.task_types is None or task_type in self.task_types)


class HealthStatus(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"
    UNKNOWN = "unknown"


class ProviderHealth(_Frozen):
    status: HealthStatus
    checked_at: datetime
    latency_ms: float | None = None
    detail: str = ""


class CostEstimate(_Frozen):
    # What the call would be charged (budgets and cost_based go by it).
    cost_usd: float
    tokens_input: int
    tokens_output: int
    # At list price, when that differs (a subscription login's call is charged 0): what cost limits go by.
    list_price_usd: float | None = None


# A QuotaSignal of this limit kind, status "allowed", naming a subscription: its refused credential changed, so
# it may be tried again before its re-probe time.
CREDENTIALS_CHANGED = "credentials"


class QuotaSignal(_Frozen):
    """What a provider learned about its remaining quota (headers, CLI rate-limit events, quota errors).

    Routing feeds these into its quota state so it can move away before a hard limit. Any field may be
    unknown; `utilization` is 0..1 of the limit used.
    """

    provider_id: str
    subscription: str | None = None
    # e.g. "requests", "tokens", "five_hour", "seven_day"
    limit_kind: str = "requests"
    limit: float | None = None
    remaining: float | None = None
    utilization: float | None = None
    reset_at: datetime | None = None
    # "allowed" | "allowed_warning" | "rejected"
    status: str = "allowed"
