"""The provider contract: config every provider shares and the `AIProvider` ABC."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import ClassVar, NamedTuple, Protocol
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from providers.errors import ProviderError
from providers.models import (
    AITask,
    CostEstimate,
    ExecutionContext,
    HealthStatus,
    Price,
    ProviderCapabilities,
    ProviderHealth,
    ProviderResponse,
    QuotaSignal,
    TokenUsage,
)
from providers.pricing import undated
from providers.redaction import redact, url_credentials

log = logging.getLogger(__name__)


class Limits(BaseModel):
    """Client-side limits a provider or subscription must stay under."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    requests_per_minute: int | None = Field(default=None, gt=0)
    requests_per_hour: int | None = Field(default=None, gt=0)
    requests_per_day: int | None = Field(default=None, gt=0)
    tokens_per_minute: int | None = Field(default=None, gt=0)
    tokens_per_hour: int | None = Field(default=None, gt=0)
    tokens_per_day: int | None = Field(default=None, gt=0)
    cost_usd_per_day: float | None = Field(default=None, gt=0)


class ModelTier(BaseModel):
    """One of several models a provider serves (priced in `prices` by its name): routing picks the cheapest whose
    `task_types` (None: every type) include the task's and whose `max_prompt_tokens` (None: any) fit its prompt."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    task_types: list[str] | None = None
    max_prompt_tokens: int | None = Field(default=None, gt=0)


class ProviderConfig(BaseModel):
    """Keys every provider type accepts; each type extends it with its own."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str
    priority: int = 5
    # None means the provider serves every task type.
    capabilities: list[str] | None = None
    limits: Limits = Limits()
    model: str | None = None
    # Model tiers (see ModelTier); `model` stays the one used when no tier suits a task.
    models: list[ModelTier] = Field(default_factory=list)
    base_url: str | None = None
    api_key_env: str | None = None
    timeout_s: float = Field(default=120.0, gt=0)
    max_concurrency: int = Field(default=4, gt=0)
    # Price per million tokens by model name; "*" applies to any model not listed.
    prices: dict[str, Price] = Field(default_factory=dict)
    health_ttl_s: float = Field(default=30.0, ge=0)
    enabled: bool = True

    @field_validator("models")
    @classmethod
    def _distinct_tiers(cls, value: list[ModelTier]) -> list[ModelTier]:
        names = [tier.name for tier in value]
        doubled = sorted({name for name in names if names.count(name) > 1})
        if doubled:
            raise ValueError(f"model {doubled[0]!r} is listed twice")
        return value

    @field_validator("base_url", check_fields=False)
    @classmethod
    def _a_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError as exc:
            raise ValueError(f"not a URL ({exc})") from None
        if parts.scheme not in ("http", "https") or not parts.hostname or value != value.strip():
            raise ValueError("not an http(s) URL with a host, e.g. https://api.example.com/v1")
        return value


class PriceMatch(NamedTuple):
    """A resolved price and where it came from: `config`, `shipped`, `family`, `fallback` or `unpriced`."""

    price: Price
    source: str
    # Which of the models asked about it prices (None for a `"*"` entry or no price at all).
    model: str | None


class SecretResolver(Protocol):
    def __call__(self, name: str) -> str | None: ...


def env_secrets(name: str) -> str | None:
    """Default secret resolver: the value of an environment variable."""
    return os.environ.get(name)


def secret_block_name(name: str) -> str:
    """The Prefect Secret block a key named by env var may also live in: `ANTHROPIC_API_KEY` ->
    `anthropic-api-key` (flows/secrets.py looks it up; `config validate` names it)."""
    return name.strip().lower().replace("_", "-")


QuotaListener = Callable[[QuotaSignal], None]

ANSWER_REDACTED = "[redacted]"
# Rough tokens-per-character ratio for estimating prompts before a call; good enough for budgets.
CHARS_PER_TOKEN = 4


class AIProvider(ABC):
    """One configured provider. Subclasses set `type_name` and `config_model` and implement the abstract methods."""

    type_name: ClassVar[str]
    config_model: ClassVar[type[ProviderConfig]] = ProviderConfig
    default_prices: ClassVar[dict[str, Price]] = {}

    def __init__(
        self,
        provider_id: str,
        config: ProviderConfig,
        *,
        secrets: SecretResolver = env_secrets,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.provider_id = provider_id
        self.config = config
        self._secrets = secrets
        self._clock = clock
        self._quota_listeners: list[QuotaListener] = []
        self._health_cache: tuple[float, ProviderHealth] | None = None
        # Models already warned about as priced by fallback, so the warning appears once, not per call.
        self._unpriced_models: set[str] = set()
        # Prices by the models asked for: the lookup runs for every call, and the config never changes.
        self._prices: dict[tuple[str, ...], PriceMatch] = {}

    # --- the contract -------------------------------------------------------------------------

    @abstractmethod
    async def execute_task(self, task: AITask, context: ExecutionContext) -> ProviderResponse:
        """Run one task; raise a `ProviderError` subclass on failure."""

    @abstractmethod
    def capabilities(self) -> ProviderCapabilities: ...

    @abstractmethod
    async def _probe(self) -> ProviderHealth:
        """A cheap live health check; `health()` caches it."""

    async def health(self, use_cache: bool = True) -> ProviderHealth:
        now = self._clock()
        if use_cache and self._health_cache and now - self._health_cache[0] < self.config.health_ttl_s:
            return self._health_cache[1]
        try:
            result = await self._probe()
        except ProviderError as exc:
            result = ProviderHealth(status=HealthStatus.UNHEALTHY, checked_at=utc_now(), detail=str(exc))
        self._health_cache = (now, result)
        return result

    async def execute_batch(
        self, tasks: Sequence[AITask], context: ExecutionContext
    ) -> list[ProviderResponse | ProviderError]:
        """Run several tasks with at most `max_concurrency` in flight; failures are returned, not raised."""
        gate = asyncio.Semaphore(self.capabilities().max_concurrency)

        async def one(task: AITask) -> ProviderResponse | ProviderError:
            async with gate:
                try:
                    return await self.execute_task(task, context)
                except ProviderError as exc:
                    return exc

        return list(await asyncio.gather(*(one(t) for t in tasks)))

    def model_for(self, task: AITask) -> str | None:
        """The model tier this task goes to: the one the task prefers (its `model`) if this provider lists it, else
        the cheapest that suits its type and prompt size; None when the provider has no tiers (or none suits:
        then its `model`)."""
        tiers = self.config.models
        if not tiers:
            return None
        preferred = task.metadata.get("model")
        if isinstance(preferred, str) and any(t.name == preferred for t in tiers):
            return preferred
        prompt = estimate_prompt_tokens(task)
        suiting = [
            t
            for t in tiers
            if (t.task_types is None or task.type in t.task_types)
            and (t.max_prompt_tokens is None or prompt <= t.max_prompt_tokens)
        ]
        if not suiting:
            return None

        def cost(tier: ModelTier) -> float:
            price = self.price_for(tier.name)
            return prompt * price.input + task.max_output_tokens * price.output

        return min(suiting, key=cost).name

    def model_names(self) -> tuple[str, ...]:
        """Every model this provider may answer with: its `model` and its tiers."""
        names = ([self.config.model] if self.config.model else []) + [t.name for t in self.config.models]
        return tuple(dict.fromkeys(names))

    def estimate_cost(self, task: AITask) -> CostEstimate:
        tokens_in = estimate_prompt_tokens(task)
        price = self.price_for(self.model_for(task) or self.config.model or "")
        cost = (tokens_in * price.input + task.max_output_tokens * price.output) / 1_000_000
        return CostEstimate(cost_usd=cost, tokens_input=tokens_in, tokens_output=task.max_output_tokens)

    async def aclose(self) -> None:  # noqa: B027 - optional hook; most providers hold nothing to release
        """Release clients and child processes; the registry calls it on shutdown."""

    # --- helpers for subclasses ---------------------------------------------------------------

    def price_for(self, model: str) -> Price:
        """The price of `model`: see `resolve_price`."""
        return self.resolve_price(model).price

    def resolve_price(self, *models: str) -> PriceMatch:
        """The price of the first of `models` (e.g. the answering model, then the configured one): see
        `price_match`."""
        match = self._prices.get(models)
        if match is None:
            match = self._prices[models] = self.price_match(self.config, *models)
        return match

    @classmethod
    def price_match(cls, config: ProviderConfig, *models: str) -> PriceMatch:
        """The price of the first of `models` that a layer knows for a provider of this type with `config`, and the
        layer (reports price providers from their config alone, with this). Layers, first match wins:

        1. `config`: the config's `prices` by exact or undated name, then its `"*"` (the user decides);
        2. `shipped`: the type's own table by exact or undated name;
        3. `family`: the model's family judged from its name (`_family_price`);
        4. `fallback`: the type's shipped `"*"`;
        5. `unpriced`: nothing knows the model, so $0.
        """
        names = [m for m in models if m]
        configured = config.prices
        for model in names:
            for name in (model, undated(model)):
                if name in configured:
                    return PriceMatch(configured[name], "config", model)
        if "*" in configured:
            return PriceMatch(configured["*"], "config", None)
        for model in names:
            for name in (model, undated(model)):
                if name in cls.default_prices and name != "*":
                    return PriceMatch(cls.default_prices[name], "shipped", model)
            family = cls._family_price(model)
            if family is not None:
                return PriceMatch(family, "family", model)
        if "*" in cls.default_prices:
            return PriceMatch(cls.default_prices["*"], "fallback", None)
        return PriceMatch(Price(), "unpriced", None)

    def cost_of(self, usage: TokenUsage, model: str, configured: str | None = None) -> float:
        """What `usage` of the answering `model` cost. When neither the config nor any table or family knows
        `model` itself (it is priced as the `configured` model, as `"*"`, or at $0), says so once per model."""
        match = self.resolve_price(model, configured or "")
        if match.source != "config" and match.model != model and model not in self._unpriced_models:
            self._unpriced_models.add(model)
            if match.source == "unpriced":
                log.warning(
                    "%s: no price for model %r, so its calls are recorded at $0. Add it to the provider's `prices` "
                    '(`"*": {input: 0, output: 0}` declares a free local model and silences this warning).',
                    self.provider_id, model,
                )  # fmt: skip
            else:
                log.warning(
                    "%s: no price for model %r; priced as %s at %s/%s USD per million input/output tokens. Add it "
                    "to the provider's `prices` to record its real cost.",
                    self.provider_id, model, repr(match.model) if match.model else "the fallback",
                    f"{match.price.input:g}", f"{match.price.output:g}",
                )  # fmt: skip
        return match.price.cost(usage)

    @classmethod
    def _family_price(cls, model: str) -> Price | None:
        """A type's price for a model its table does not list, judged from the name; None when unknown."""
        return None

    def secret(self, env_name: str | None) -> str | None:
        return self._secrets(env_name) if env_name else None

    def known_secrets(self) -> list[str | None]:
        """Every credential value this provider could send or see: its key, and any written into `base_url`."""
        return [self.secret(self.config.api_key_env), *url_credentials(self.config.base_url)]

    def scrub(self, text: str) -> str:
        """`text` (an answer) with every known credential value, raw or URL-encoded, replaced by `[redacted]`:
        a model can echo a key it was shown, and the answer is stored, printed and sent to other vendors."""
        values = self.known_secrets()
        return redact(text, values, ANSWER_REDACTED) if any(values) else text

    def add_quota_listener(self, listener: QuotaListener) -> None:
        self._quota_listeners.append(listener)

    def report_quota(self, signal: QuotaSignal) -> None:
        for listener in self._quota_listeners:
            listener(signal)

    def task_types(self) -> frozenset[str] | None:
        caps = self.config.capabilities
        return None if caps is None else frozenset(caps)


def estimate_prompt_tokens(task: AITask) -> int:
    chars = len(task.prompt) + sum(len(k) + len(v) for k, v in task.context.items())
    return max(1, chars // CHARS_PER_TOKEN)


def utc_now() -> datetime:
    return datetime.now(UTC)
