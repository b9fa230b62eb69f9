"""The standard synthetic workload's four providers: a real providers file, and stand-ins that behave as each does.

    claude_code    a pool of three Claude Code (Max) subscriptions, already paid for ($100 a month a seat: a fixed
                   fee, the same whatever routing does). Each seat has a 5-hour usage window opened by its first
                   call; past WINDOW_TOKENS tokens it refuses calls until the window ends (QuotaExhausted,
                   `usage_limit`, naming the seat), and it warns (`allowed_warning`) past 80%, as the CLI's
                   rate-limit events do. As the CLI provider does on a login, each call is charged nothing at the
                   margin and keeps its list price (Sonnet's) beside. Slow: a CLI start, and agentic turns
    anthropic_api  Claude Sonnet 4.5 on the Anthropic API at list price ($3 / $15 per million tokens), with the
                   per-minute limits of a tier-1 account (50 requests, 30,000 input and 8,000 output tokens; a
                   call over them gets a 429 with a retry-after, and a prompt larger than the input limit never
                   fits); the providers file declares the request limit only, as most users would
    openai_api     GPT-4.1 on an OpenAI-compatible API ($2 / $8), tier-2 limits (5,000 requests, 450,000 tokens
                   a minute), not declared in the providers file; somewhat weaker on code
    local_model    a local model behind an OpenAI-compatible server: free, two calls at a time, slow (600 prompt
                   and 20 output tokens a second), good at classification and weak at code

Each call succeeds with its provider's chance for the task type (SUCCESS): a failed answer costs its tokens and
is reported as `malformed_response` (`task_failed`: the answer did not pass the task's check, e.g. a patch that
does not apply), so routing fails over, as it would on a real check. During a vendor's incident (see
`planning.synthetic`) calls fail with the incident's outcome: fast for `overloaded` and `unavailable`, after the
provider's timeout for `timeout`. Every draw (success, latency jitter) is a hash of the seed, the provider, the
task and the attempt: a strategy that makes the same call as another meets the same luck.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar, Literal

from planning.synthetic import Incident, SyntheticTask, wall_clock
from providers import (
    AIProvider,
    AITask,
    CostEstimate,
    ExecutionContext,
    HealthStatus,
    MalformedResponse,
    Overloaded,
    ProviderCapabilities,
    ProviderConfig,
    ProviderError,
    ProviderHealth,
    ProviderResponse,
    ProviderTimeout,
    QuotaExhausted,
    QuotaSignal,
    RateLimited,
    TokenUsage,
    Unavailable,
    utc_now,
)

Billing = Literal["subscription", "metered", "free"]

# The providers file of the standard workload (`strategy` is set per run).
PROVIDERS_DOC: dict[str, Any] = {
    "version": 1,
    "providers": {
        "claude_code": {
            "type": "claude_cli",
            "priority": 1,
            "model": "sonnet",
            "max_concurrency": 4,
            "timeout_s": 900,
            "subscriptions": [
                {"name": "seat-a", "config_dir": "~/.claude-seat-a"},
                {"name": "seat-b", "config_dir": "~/.claude-seat-b"},
                {"name": "seat-c", "config_dir": "~/.claude-seat-c"},
            ],
        },
        "anthropic_api": {
            "type": "anthropic",
            "priority": 2,
            "model": "claude-sonnet-4-5",
            "max_concurrency": 8,
            "timeout_s": 300,
            "limits": {"requests_per_minute": 50},
        },
        "openai_api": {
            "type": "openai_compatible",
            "priority": 3,
            "base_url": "https://api.openai.com/v1",
            "api_key_env": "OPENAI_API_KEY",
            "model": "gpt-4.1",
            "max_concurrency": 8,
            "timeout_s": 300,
        },
        "local_model": {
            "type": "openai_compatible",
            "priority": 4,
            "base_url": "http://127.0.0.1:8080/v1",
            "model": "qwen2.5-coder-32b-instruct",
            "prices": {"*": {"input": 0, "output": 0}},
            "max_concurrency": 2,
            "timeout_s": 900,
        },
    },
}
WINDOW_S = 5 * 3600.0
WINDOW_TOKENS = 600_000
WARN_AT = 0.8
SEAT_USD_PER_MONTH = 100.0


@dataclass(frozen=True, slots=True)
class Behaviour:
    """How one provider serves calls (see the module's docstring)."""

    vendor: str
    billing: Billing
    # Chance that a call's answer is usable, by task type.
    success: dict[str, float]
    # Seconds per call: overhead + prompt / prompt_tps + output / output_tps, times a log-normal jitter.
    overhead_s: float
    prompt_tps: float
    output_tps: float
    # Per-minute limits the server enforces (a sliding minute): requests, input and output tokens.
    requests_per_minute: int | None = None
    input_tokens_per_minute: int | None = None
    output_tokens_per_minute: int | None = None
    # A subscription's usage window: tokens per window, the window opened by its first call.
    window_tokens: int | None = None
    fixed_usd_per_week: float = 0.0


_CLAUDE_SUCCESS = {"classification": 0.995, "summarization": 0.99, "code_review": 0.97, "bug_fix": 0.92}
BEHAVIOURS: dict[str, Behaviour] = {
    "claude_code": Behaviour(
        "anthropic",
        "subscription",
        _CLAUDE_SUCCESS,
        overhead_s=6.0,
        prompt_tps=4_000,
        output_tps=45,
        window_tokens=WINDOW_TOKENS,
        fixed_usd_per_week=3 * SEAT_USD_PER_MONTH * 12 / 52,
    ),
    "anthropic_api": Behaviour(
        "anthropic",
        "metered",
        _CLAUDE_SUCCESS,
        overhead_s=1.0,
        prompt_tps=8_000,
        output_tps=70,
        requests_per_minute=50,
        input_tokens_per_minute=30_000,
        output_tokens_per_minute=8_000,
    ),
    "openai_api": Behaviour(
        "openai",
        "metered",
        {"classification": 0.99, "summarization": 0.985, "code_review": 0.94, "bug_fix": 0.85},
        overhead_s=0.8,
        prompt_tps=10_000,
        output_tps=90,
        requests_per_minute=5000,
        input_tokens_per_minute=450_000,
    ),
    "local_model": Behaviour(
        "local",
        "free",
        {"classification": 0.95, "summarization": 0.9, "code_review": 0.7, "bug_fix": 0.35},
        overhead_s=0.5,
        prompt_tps=600,
        output_tps=20,
    ),
}


def fraction(*parts: object) -> float:
    """A deterministic draw in [0, 1) from `parts`."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _jitter(*parts: object) -> float:
    """A log-normal factor (median 1, sigma 0.25) drawn from `parts` by the inverse of the normal CDF's
    logistic approximation: cheap, deterministic and good enough for spread."""
    u = min(max(fraction(*parts), 1e-9), 1 - 1e-9)
    z = math.log(u / (1 - u)) / 1.702
    return math.exp(0.25 * z)


@dataclass(slots=True)
class _Seat:
    name: str
    opened_at: float | None = None
    used: int = 0

    def remaining_s(self, now: float) -> float:
        return 0.0 if self.opened_at is None else max(0.0, self.opened_at + WINDOW_S - now)

    def roll(self, now: float) -> None:
        if self.opened_at is not None and now >= self.opened_at + WINDOW_S:
            self.opened_at, self.used = None, 0

    def out(self, now: float) -> bool:
        self.roll(now)
        return self.used >= WINDOW_TOKENS


@dataclass(slots=True)
class _Minute:
    """What a server counted in the last 60 s: (at, requests, input tokens, output tokens)."""

    calls: deque[tuple[float, int, int]] = field(default_factory=deque)

    def wait_s(self, now: float, behaviour: Behaviour, prompt: int, output: int) -> float | None:
        """How long until a call of this size fits the per-minute limits; None if it fits now."""
        calls = self.calls
        while calls and calls[0][0] <= now - 60:
            calls.popleft()
        checks = [
            (behaviour.requests_per_minute, [1 for _ in calls], 1),
            (behaviour.input_tokens_per_minute, [c[1] for c in calls], prompt),
            (behaviour.output_tokens_per_minute, [c[2] for c in calls], output),
        ]
        wait = 0.0
        for limit, used, ask in checks:
            if limit is None or sum(used) + ask <= limit:
                continue
            # The oldest calls leave the window first: wait until enough has left.
            over = sum(used) + ask - limit
            for (at, *_), amount in zip(calls, used, strict=True):
                over -= amount
                if over <= 0:
                    wait = max(wait, at + 60 - now)
                    break
            else:
                wait = max(wait, 60.0)  # larger than the limit itself: never fits (retry-after a minute)
        return wait if wait > 0 else None


class SyntheticProvider(AIProvider):
    """One provider of the standard workload: its real config and prices, simulated calls on a virtual clock."""

    type_name: ClassVar[str] = "synthetic"

    def __init__(
        self,
        provider_id: str,
        config: ProviderConfig,
        behaviour: Behaviour,
        incidents: tuple[Incident, ...],
        pricing: AIProvider,
        clock: Callable[[], float],
        seed: int,
    ) -> None:
        super().__init__(provider_id, config, clock=clock)
        self._wall = wall_clock(clock)
        self.behaviour = behaviour
        self._incidents = [i for i in incidents if i.vendor == behaviour.vendor]
        self._pricing = pricing
        self._seed = seed
        self._seats = [_Seat(s.name) for s in getattr(config, "subscriptions", [])]
        self._cursor = 0
        self._minute = _Minute()

    def capabilities(self) -> ProviderCapabilities:
        return ProviderCapabilities(
            task_types=self.task_types(),
            models=(self.config.model,) if self.config.model else (),
            max_concurrency=self.config.max_concurrency,
        )

    async def _probe(self) -> ProviderHealth:
        return ProviderHealth(status=HealthStatus.HEALTHY, checked_at=utc_now())

    def estimate_cost(self, task: AITask) -> CostEstimate:
        return self._pricing.estimate_cost(task)

    async def execute_task(self, task: AITask, context: ExecutionContext) -> ProviderResponse:
        spec: SyntheticTask = task.metadata["synthetic"]
        now = self._clock()
        await self._incident(now)
        seat = self._take_seat(now, context.subscription)
        self._check_minute(now, spec)
        b = self.behaviour
        draw = (self._seed, self.provider_id, spec.id, context.attempt)
        latency = (b.overhead_s + spec.prompt_tokens / b.prompt_tps + spec.output_tokens / b.output_tps) * _jitter(
            "latency", *draw
        )
        if latency > self.config.timeout_s:
            await asyncio.sleep(self.config.timeout_s)
            raise ProviderTimeout("no answer within timeout_s", provider_id=self.provider_id, error_type="read")
        await asyncio.sleep(latency)
        usage = TokenUsage(input=spec.prompt_tokens, output=spec.output_tokens)
        cost = self._pricing.price_for(self.config.model or "").cost(usage)
        # As the Claude CLI on a login: charged nothing at the margin, the list price kept beside.
        charged, list_price = (0.0, cost) if b.billing == "subscription" else (cost, None)
        name = seat.name if seat is not None else None
        if seat is not None:
            self._used(seat, usage.total)
        if fraction("success", *draw) >= b.success.get(spec.type, 1.0):
            raise MalformedResponse(
                "the answer did not pass the task's check",
                provider_id=self.provider_id,
                error_type="task_failed",
                subscription=name,
                usage=usage,
                cost_usd=charged,
                list_price_usd=list_price,
                model=self.config.model,
            )
        return ProviderResponse(
            text="ok",
            model=self.config.model or "",
            usage=usage,
            cost_usd=charged,
            list_price_usd=list_price,
            latency_ms=latency * 1000,
            subscription=name,
        )

    # --- incidents and limits ----------------------------------------------------------------------

    async def _incident(self, now: float) -> None:
        for incident in self._incidents:
            if incident.start_s <= now < incident.end_s:
                kind = incident.outcome
                if kind == "timeout":
                    await asyncio.sleep(self.config.timeout_s)
                    raise ProviderTimeout("incident: no answer", provider_id=self.provider_id, error_type="read")
                await asyncio.sleep(0.5)
                error: type[ProviderError] = Overloaded if kind == "overloaded" else Unavailable
                raise error(f"incident: {kind}", provider_id=self.provider_id, error_type="incident")

    def _check_minute(self, now: float, spec: SyntheticTask) -> None:
        b = self.behaviour
        if b.requests_per_minute is None:
            return
        wait = self._minute.wait_s(now, b, spec.prompt_tokens, spec.output_tokens)
        if wait is not None:
            self._report_minute(now)
            raise RateLimited(
                "per-minute limit", provider_id=self.provider_id, error_type="rate_limit_error", retry_after_s=wait
            )
        self._minute.calls.append((now, spec.prompt_tokens, spec.output_tokens))
        self._report_minute(now)

    def _report_minute(self, now: float) -> None:
        """What the vendor's rate-limit headers tell on every response, a 429 included, as the real providers parse
        them: each per-minute limit, what is left of it, and when the window frees (the oldest counted call
        leaves). Anthropic sends `anthropic-ratelimit-{requests,input-tokens,output-tokens}-*` (providers.anthropic),
        OpenAI `x-ratelimit-{limit,remaining}-{requests,tokens}` (providers.openai_compatible)."""
        b, calls = self.behaviour, self._minute.calls
        reset_at = self._wall() + timedelta(seconds=(calls[0][0] + 60 - now) if calls else 0.0)
        requests, prompt, output = len(calls), sum(c[1] for c in calls), sum(c[2] for c in calls)
        if b.vendor == "anthropic":
            used = {
                "requests": (b.requests_per_minute, requests),
                "input_tokens": (b.input_tokens_per_minute, prompt),
                "output_tokens": (b.output_tokens_per_minute, output),
            }
        else:
            used = {"requests": (b.requests_per_minute, requests), "tokens": (b.input_tokens_per_minute, prompt)}
        for kind, (limit, count) in used.items():
            if limit is not None:
                self.report_quota(
                    QuotaSignal(
                        provider_id=self.provider_id,
                        limit_kind=kind,
                        limit=float(limit),
                        remaining=float(max(0, limit - count)),
                        reset_at=reset_at,
                    )
                )

    def _take_seat(self, now: float, named: str | None) -> _Seat | None:
        """The subscription that serves the call (the one routing named, else the next in rotation that is in)."""
        if not self._seats:
            return None
        if named is not None:
            seat = next((s for s in self._seats if s.name == named), None)
            if seat is not None and seat.out(now):
                raise self._usage_limit(seat, now)
            if seat is not None:
                seat.opened_at = now if seat.opened_at is None else seat.opened_at
                return seat
        n = len(self._seats)
        for step in range(n):
            seat = self._seats[(self._cursor + step) % n]
            if not seat.out(now):
                self._cursor = (self._cursor + step + 1) % n
                seat.opened_at = now if seat.opened_at is None else seat.opened_at
                return seat
        soonest = min(self._seats, key=lambda s: s.remaining_s(now))
        self.report_quota(
            QuotaSignal(
                provider_id=self.provider_id,
                limit_kind="subscriptions",
                utilization=1.0,
                reset_at=self._wall() + timedelta(seconds=soonest.remaining_s(now)),
                status="rejected",
            )
        )
        raise QuotaExhausted(
            "every subscription is at its usage limit",
            provider_id=self.provider_id,
            error_type="usage_limit",
            retry_after_s=soonest.remaining_s(now),
        )

    def _usage_limit(self, seat: _Seat, now: float) -> QuotaExhausted:
        return QuotaExhausted(
            "usage limit reached",
            provider_id=self.provider_id,
            error_type="usage_limit",
            subscription=seat.name,
            retry_after_s=seat.remaining_s(now),
        )

    def _used(self, seat: _Seat, tokens: int) -> None:
        """Count a call against its seat's window and report the window's use, as the CLI's events do."""
        now = self._clock()
        seat.roll(now)
        if seat.opened_at is None:
            seat.opened_at = now
        seat.used += tokens
        utilization = min(1.0, seat.used / WINDOW_TOKENS)
        self.report_quota(
            QuotaSignal(
                provider_id=self.provider_id,
                subscription=seat.name,
                limit_kind="five_hour",
                utilization=utilization,
                reset_at=self._wall() + timedelta(seconds=seat.remaining_s(now)),
                status="rejected" if utilization >= 1.0 else "allowed_warning" if utilization >= WARN_AT else "allowed",
            )
        )
