"""`local_mock`: a provider that calls nothing and is deterministic, for demos, tests and benchmarks."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta
from typing import ClassVar, Literal

from pydantic import Field

from providers.base import CHARS_PER_TOKEN, AIProvider, ProviderConfig, utc_now
from providers.errors import ERRORS_BY_OUTCOME, ProviderError, QuotaExhausted
from providers.models import (
    AITask,
    ExecutionContext,
    HealthStatus,
    Price,
    ProviderCapabilities,
    ProviderHealth,
    ProviderResponse,
    TokenUsage,
)
from providers.prompt import render_prompt

FailWith = Literal[
    "rate_limited",
    "quota_exhausted",
    "overloaded",
    "unavailable",
    "timeout",
    "authentication",
    "bad_request",
    "malformed_response",
]


class LocalMockConfig(ProviderConfig):
    type: Literal["local_mock"] = "local_mock"
    model: str | None = "mock-1"
    latency_ms: float = Field(default=25.0, ge=0)
    # Fraction of calls that fail, decided from a hash of (provider, task, attempt, seed).
    failure_rate: float = Field(default=0.0, ge=0, le=1)
    fail_with: FailWith = "unavailable"
    seed: int = 0
    # A rate-limit failure carries this retry-after.
    retry_after_s: float | None = Field(default=None, ge=0)
    # A server-side quota: after this many requests per window, calls raise quota_exhausted until the reset.
    quota_requests: int | None = Field(default=None, gt=0)
    quota_reset_s: float = Field(default=60.0, gt=0)


_TEMPLATES: dict[str, str] = {
    "code_review": "Code review: {n} findings. The most important: {detail}. Suggest adding tests around it.",
    "pr_review": "PR review: approve with {n} comments. Blocking concern: {detail}.",
    "bug_fix": "Bug fix: root cause is {detail}; patch touches {n} files and adds a regression test.",
    "code_analysis": "Analysis: {n} modules mapped; the central one handles {detail}.",
    "feature": "Feature plan: {n} steps, starting with {detail}.",
    "summarization": "Summary: {n} key points; the headline is {detail}.",
    "documentation": "Docs draft: {n} sections, opening with {detail}.",
    "testing": "Test plan: {n} cases, the riskiest being {detail}.",
}
_GENERIC = "Answer ({type}): {n} points; first, {detail}."
_DETAILS = (
    "an unchecked None on the error path",
    "a race between the cache refresh and the writer",
    "inconsistent timezone handling in timestamps",
    "an N+1 query in the listing endpoint",
    "a missing retry on transient network errors",
    "input validation at the API boundary",
    "the configuration loader's defaults",
    "a leaked file handle in the exporter",
)


def _fraction(*parts: object) -> float:
    """A reproducible number in [0, 1) from the given parts."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class LocalMockProvider(AIProvider):
    type_name: ClassVar[str] = "local_mock"
    config_model: ClassVar[type[ProviderConfig]] = LocalMockConfig
    default_prices: ClassVar[dict[str, Price]] = {"*": Price(input=0.5, output=1.5)}

    config: LocalMockConfig

    def __init__(self, provider_id: str, config: ProviderConfig, **kwargs: object) -> None:
        super().__init__(provider_id, config, **kwargs)  # type: ignore[arg-type]
        self._window_start = self._clock()
        self._window_requests = 0

    def capabilities(self) -> ProviderCapabilities:
        return ProviderCapabilities(
            task_types=self.task_types(),
            models=self.model_names() or ("mock-1",),
            max_concurrency=self.config.max_concurrency,
            supports_workdir=True,
        )

    async def _probe(self) -> ProviderHealth:
        return ProviderHealth(status=HealthStatus.HEALTHY, checked_at=utc_now(), latency_ms=0.0)

    async def execute_task(self, task: AITask, context: ExecutionContext) -> ProviderResponse:
        self._take_quota()
        if self.config.latency_ms:
            await asyncio.sleep(self.config.latency_ms / 1000)
        failure = self._failure_for(task, context)
        if failure is not None:
            raise failure
        prompt = render_prompt(task)
        text = answer_text(task)
        usage = TokenUsage(input=max(1, len(prompt) // CHARS_PER_TOKEN), output=max(1, len(text) // CHARS_PER_TOKEN))
        model = context.model or self.config.model or "mock-1"
        return ProviderResponse(
            text=text,
            model=model,
            usage=usage,
            cost_usd=self.price_for(model).cost(usage),
            latency_ms=self.config.latency_ms,
            subscription=context.subscription,
            finish_reason="stop",
        )

    def _take_quota(self) -> None:
        limit = self.config.quota_requests
        if limit is None:
            return
        now = self._clock()
        if now - self._window_start >= self.config.quota_reset_s:
            self._window_start, self._window_requests = now, 0
        if self._window_requests >= limit:
            remaining_s = self.config.quota_reset_s - (now - self._window_start)
            raise QuotaExhausted(
                f"mock quota of {limit} requests used; resets in {remaining_s:.1f}s",
                provider_id=self.provider_id,
                error_type="mock_quota",
                reset_at=utc_now() + timedelta(seconds=remaining_s),
                retry_after_s=remaining_s,
            )
        self._window_requests += 1

    def _failure_for(self, task: AITask, context: ExecutionContext) -> ProviderError | None:
        rate = self.config.failure_rate
        if rate <= 0 or _fraction(self.provider_id, task.id, task.prompt, context.attempt, self.config.seed) >= rate:
            return None
        cls = ERRORS_BY_OUTCOME[self.config.fail_with]
        return cls(
            f"simulated {self.config.fail_with} (failure_rate={rate})",
            provider_id=self.provider_id,
            error_type="simulated",
            retry_after_s=self.config.retry_after_s,
        )


def answer_text(task: AITask) -> str:
    """The mock's answer: the same task (type, prompt and context) always gets the same text."""
    key = hashlib.sha256(f"{task.type}|{task.prompt}|{sorted(task.context.items())}".encode()).digest()
    template = _TEMPLATES.get(task.type, _GENERIC)
    text = template.format(type=task.type, n=2 + key[0] % 7, detail=_DETAILS[key[1] % len(_DETAILS)])
    if task.context:
        text += f" Builds on {', '.join(sorted(task.context))}."
    return text
