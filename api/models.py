"""Request and response bodies of the HTTP API (its OpenAPI document is generated from these)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, field_validator

from batches import AttemptSummary, VendorBatchRef, duration_s
from providers import Priority
from routing import ProviderLiveView, StrategyName

# Bounds on what a request may carry (besides the body size limit): no unbounded strings or lists.
MAX_PROMPT_CHARS = 200_000
MAX_NAME_CHARS = 200
ID_PATTERN = r"^[A-Za-z0-9_.:-]+$"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SubscriptionOut(BaseModel):
    name: str
    kind: Literal["config_dir", "api_key_env"]
    config_dir: str | None = None
    api_key_env: str | None = None  # the variable's name, never its value
    api_key: Literal["set", "missing"] | None = None
    limits: dict[str, float] = {}


class ProviderOut(BaseModel):
    """A provider's configuration, capabilities and status; secrets appear by the name of what holds them."""

    id: str
    type: str
    source: Literal["file", "builtin", "api"]
    enabled: bool
    priority: int
    capabilities: list[str] | None = Field(description="task types it takes; null: every type")
    model: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    api_key: Literal["set", "missing"] | None = None
    limits: dict[str, float] = {}
    max_concurrency: int
    timeout_s: float
    subscriptions: list[SubscriptionOut] = []
    status: ProviderLiveView | None = Field(default=None, description="live state in this server's router")


class ProviderSettings(RootModel[dict[str, Any]]):
    """A provider's settings as in a providers file (`type` and the type's keys); secrets by env var name."""


class ProviderCreate(_Body):
    id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    settings: dict[str, Any] = Field(description="as a providers file's entry: `type` and that type's keys")


class ProviderReset(BaseModel):
    id: str
    cleared: list[str] = Field(description="what the reset cleared, e.g. `circuit: closed`, `team-a: usage_limit`")
    status: ProviderLiveView


class ProviderList(BaseModel):
    source: str = Field(description="the providers file (or the built-in defaults)")
    strategy: str
    providers: list[ProviderOut]


class Healthz(BaseModel):
    status: Literal["ok"] = "ok"
    providers: int


class Problem(BaseModel):
    """An error answer: what went wrong, in a sentence."""

    detail: str | list[dict[str, Any]]


_WHY = {
    400: "the body could not be read as JSON",
    404: "no such provider, subscription or task",
    409: "the id is taken, or the task has run already",
    413: "the request body is larger than api.max_body_bytes",
    422: "the request does not validate; each problem with its `loc`",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the error answers a route gives besides 401/403 (every /api/v1 route has those); a
    route that takes a body (413) may also find it unreadable (400)."""
    wanted = {*codes, 400} if 413 in codes else set(codes)
    return {code: {"model": Problem, "description": _WHY[code]} for code in sorted(wanted)}


class TaskRequest(_Body):
    """One task to route: now (200 with its answer), or with a `deadline` in the background (202 at once)."""

    id: str | None = Field(
        default=None, min_length=1, max_length=MAX_NAME_CHARS, pattern=ID_PATTERN, description="default: generated"
    )
    type: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    priority: Priority = Priority.NORMAL
    team: str | None = Field(default=None, max_length=MAX_NAME_CHARS)
    affinity: str | None = Field(default=None, max_length=MAX_NAME_CHARS)
    provider: str | None = Field(default=None, min_length=1, max_length=MAX_NAME_CHARS, description="preferred")
    model: str | None = Field(default=None, min_length=1, max_length=MAX_NAME_CHARS, description="preferred")
    strategy: StrategyName | None = None
    max_attempts: int = Field(default=3, ge=1, le=50)
    max_output_tokens: int = Field(default=1024, ge=1, le=1_000_000)
    cache: bool = Field(default=True, strict=True, description="false: never answered from the response cache")
    deadline: str | None = Field(
        default=None,
        max_length=40,
        description="how long from now the answer is needed, as a batch spec's `deadline` (`12h`, `90m`, `1h30m`, "
        "`45s`, `1d`): answered 202 at once and routed in the background, where it may wait in a provider's vendor "
        "batch API (`batch: {enabled: true}`) at the batch price and goes live before the deadline; "
        "read it with `GET /api/v1/tasks/{id}` (the `Location` header)",
        examples=["12h"],
    )

    @field_validator("deadline")
    @classmethod
    def _a_duration(cls, value: str | None) -> str | None:
        if value is not None:
            duration_s(value)  # the batch spec's parser: the same syntax and message
        return value

    @property
    def deadline_s(self) -> float | None:
        return None if self.deadline is None else duration_s(self.deadline)


class TaskOut(BaseModel):
    """A task and how it was routed; `id` is `<run id>:<task id>`."""

    id: str
    run_id: str
    task_id: str
    type: str
    status: str
    provider: str | None = None
    output: str | None = None
    error: str | None = None
    attempts: list[AttemptSummary] = []
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    decision: dict[str, Any] | None = None
    preference: dict[str, str | None] | None = None
    # The vendor batch the task was sent to (`id` is the vendor's batch id; `state` waiting | done | fell_back |
    # failed); null for a task that never waited in one.
    vendor_batch: VendorBatchRef | None = None


class ProviderPreference(_Body):
    """A provider (or model) a task that has not run yet should be tried on first."""

    provider: str | None = Field(default=None, min_length=1, max_length=MAX_NAME_CHARS)
    model: str | None = Field(default=None, min_length=1, max_length=MAX_NAME_CHARS)


class TaskProvider(BaseModel):
    id: str
    status: str
    provider: str | None = None
    decision: dict[str, Any] | None = None
    preference: dict[str, str | None] | None = None


__all__ = [
    "Healthz",
    "Problem",
    "ProviderCreate",
    "ProviderList",
    "ProviderOut",
    "ProviderPreference",
    "ProviderReset",
    "ProviderSettings",
    "SubscriptionOut",
    "TaskOut",
    "TaskProvider",
    "TaskRequest",
    "errors",
]
