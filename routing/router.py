"""The routing step: pick a provider for a task, call it, fail over on errors, record every attempt."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ledger import AttemptRecord
from providers import AIProvider, AITask, ExecutionContext, ProviderError, ProviderResponse, TokenUsage
from routing.registry import ProviderRegistry

AttemptRecorder = Callable[[AttemptRecord], None]

MAX_SAME_PROVIDER_RETRIES = 1


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What the router needs to know about the run a task belongs to."""

    run_id: str = "adhoc"
    strategy: str = "priority_based"
    team: str | None = None


@dataclass(slots=True)
class RoutedResult:
    task_id: str
    status: str  # completed | failed | cancelled
    provider_id: str | None = None
    response: ProviderResponse | None = None
    outcome: str | None = None  # the last error's outcome when not completed
    error: str | None = None
    attempts: list[AttemptRecord] = field(default_factory=list)
    decision: dict[str, Any] = field(default_factory=dict)

    @property
    def cost_usd(self) -> float:
        return sum(a.cost_usd for a in self.attempts)


class Router:
    def __init__(
        self,
        registry: ProviderRegistry,
        *,
        recorder: AttemptRecorder | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.registry = registry
        self._recorder = recorder
        self._sleep = sleep

    async def route(self, task: AITask, run: RunInfo = RunInfo(), *, first_attempt: int = 1) -> RoutedResult:
        """Try capable providers in strategy order within `task.max_attempts` calls; never raises ProviderError."""
        strategy = str(task.metadata.get("strategy") or run.strategy)
        candidates, skipped = self._candidates(task)
        order = sorted(candidates, key=lambda p: p.config.priority)
        decision: dict[str, Any] = {
            "strategy": strategy,
            "candidates": [p.provider_id for p in candidates],
            "skipped": skipped,
            "order": [p.provider_id for p in order],
            "chosen": None,
        }
        result = RoutedResult(task_id=task.id, status="failed", decision=decision)
        if not order:
            result.outcome = "unavailable"
            result.error = "no provider can serve task type " + repr(task.type)
            return result

        attempt = first_attempt
        budget_end = first_attempt + task.max_attempts
        for provider in order:
            retries_here = 0
            while attempt < budget_end:
                outcome = await self._attempt(provider, task, run, strategy, attempt, result)
                attempt += 1
                if outcome is None:
                    decision["chosen"] = provider.provider_id
                    return result
                if outcome.retry_helps and retries_here < MAX_SAME_PROVIDER_RETRIES and attempt < budget_end:
                    retries_here += 1
                    await self._sleep(outcome.retry_after_s or 0.0)
                    continue
                if not outcome.failover_helps:
                    return result
                break
            if attempt >= budget_end:
                break
        return result

    def _candidates(self, task: AITask) -> tuple[list[AIProvider], dict[str, str]]:
        candidates, skipped = [], {}
        for provider in self.registry:
            caps = provider.capabilities()
            if not caps.available:
                skipped[provider.provider_id] = "unavailable"
            elif not caps.serves(task.type):
                skipped[provider.provider_id] = "capability"
            else:
                candidates.append(provider)
        return candidates, skipped

    async def _attempt(
        self, provider: AIProvider, task: AITask, run: RunInfo, strategy: str, attempt: int, result: RoutedResult
    ) -> ProviderError | None:
        """One call; fills `result` and returns the error, or None on success."""
        context = ExecutionContext(run_id=run.run_id, attempt=attempt, timeout_s=provider.config.timeout_s)
        started, t0 = datetime.now(UTC), time.perf_counter()
        record = dict(
            run_id=run.run_id,
            task_id=task.id,
            provider_id=provider.provider_id,
            task_type=task.type,
            attempt=attempt,
            team=task.team or run.team,
            strategy=strategy,
            started_at=started,
        )
        try:
            response = await provider.execute_task(task, context)
        except ProviderError as exc:
            self._record(result, record, t0, outcome=exc.outcome, error=exc)
            result.outcome, result.error, result.provider_id = exc.outcome, str(exc), None
            return exc
        except asyncio.CancelledError:
            self._record(result, record, t0, outcome="cancelled", error=None)
            result.status, result.outcome, result.error = "cancelled", "cancelled", "cancelled while calling"
            raise
        self._record(result, record, t0, outcome="success", response=response)
        result.status, result.provider_id, result.response = "completed", provider.provider_id, response
        result.outcome = result.error = None
        return None

    def _record(
        self,
        result: RoutedResult,
        record: dict[str, Any],
        t0: float,
        *,
        outcome: str,
        error: ProviderError | None = None,
        response: ProviderResponse | None = None,
    ) -> None:
        latency_ms = (time.perf_counter() - t0) * 1000
        attempt = AttemptRecord(
            **record,
            finished_at=datetime.now(UTC),
            outcome=outcome,
            error_type=error.error_type if error else None,
            error_message=str(error)[:500] if error else None,
            subscription=(response.subscription if response else error.subscription if error else None),
            model=response.model if response else error.model if error else None,
            usage=(response.usage if response else error.usage if error and error.usage else TokenUsage()),
            cost_usd=response.cost_usd if response else error.cost_usd if error else 0.0,
            latency_ms=latency_ms,
        )
        result.attempts.append(attempt)
        if self._recorder is not None:
            self._recorder(attempt)
