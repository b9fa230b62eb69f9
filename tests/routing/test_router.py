"""The routing step: capability filter, priority order, failover, retries where they help, one row per attempt."""

from __future__ import annotations

import pytest

from ledger import DecisionEstimate, Ledger, NewTask
from providers import AITask, LocalMockConfig
from routing.registry import ProviderRegistry
from routing.router import Router, RunInfo


def _registry(**providers: dict) -> ProviderRegistry:
    return ProviderRegistry.from_configs(
        {name: LocalMockConfig(latency_ms=0, **settings) for name, settings in providers.items()}
    )


def _task(task_id: str = "t", task_type: str = "code_review", max_attempts: int = 3) -> AITask:
    return AITask(id=task_id, type=task_type, prompt=f"do {task_id}", max_attempts=max_attempts)


async def test_fails_over_from_a_failing_provider_to_a_healthy_one(sqlite_url: str) -> None:
    ledger = Ledger(url=sqlite_url)
    run_id, _ = ledger.start_or_resume_run(
        batch_name="b",
        batch_hash="h",
        team="qa",
        strategy="priority_based",
        tasks=[NewTask(task_id="t", task_type="code_review", priority="normal")],
    )
    router = Router(
        _registry(flaky={"priority": 1, "failure_rate": 1.0}, steady={"priority": 2}),
        recorder=lambda a: ledger.record_attempts([a]),
    )
    result = await router.route(_task(), RunInfo(run_id=run_id, team="qa"))
    assert result.status == "completed" and result.provider_id == "steady"
    assert [(a.provider_id, a.outcome, a.attempt) for a in result.attempts] == [
        ("flaky", "unavailable", 1),
        ("steady", "success", 2),
    ]
    rows = ledger.attempts(run_id)
    assert [(r.provider_id, r.outcome, r.attempt, r.team) for r in rows] == [
        ("flaky", "unavailable", 1, "qa"),
        ("steady", "success", 2, "qa"),
    ]
    assert result.decision.order == ("flaky", "steady") and result.decision.chosen == "steady"


async def test_capability_filter_and_priority_order() -> None:
    router = Router(
        _registry(
            reviewer={"priority": 5, "capabilities": ["code_review"]},
            fixer={"priority": 1, "capabilities": ["bug_fix"]},
            general={"priority": 9},
        )
    )
    result = await router.route(_task())
    assert result.provider_id == "reviewer"
    assert result.decision.skipped == {"fixer": "capability"}
    assert result.decision.order == ("reviewer", "general")


async def test_max_attempts_counts_calls_across_providers() -> None:
    router = Router(
        _registry(a={"priority": 1, "failure_rate": 1.0}, b={"priority": 2, "failure_rate": 1.0}, c={"priority": 3})
    )
    result = await router.route(_task(max_attempts=2))
    assert result.status == "failed" and result.outcome == "unavailable"
    assert [a.provider_id for a in result.attempts] == ["a", "b"]


async def test_bad_request_stops_without_failover() -> None:
    router = Router(_registry(a={"priority": 1, "failure_rate": 1.0, "fail_with": "bad_request"}, b={"priority": 2}))
    result = await router.route(_task())
    assert result.status == "failed" and result.outcome == "bad_request"
    assert [a.provider_id for a in result.attempts] == ["a"]


async def test_short_retry_after_retries_the_same_provider_once_and_others_keep_away_meanwhile() -> None:
    now = [1000.0]
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    router = Router(
        _registry(
            a={"priority": 1, "failure_rate": 1.0, "fail_with": "rate_limited", "retry_after_s": 0.5}, b={"priority": 2}
        ),
        sleep=fake_sleep,
        clock=lambda: now[0],
    )
    result = await router.route(_task())
    assert [a.provider_id for a in result.attempts] == ["a", "a", "b"]
    # the retry-after is honoured (never earlier), plus at most 0.1 s of jitter
    assert len(slept) == 1 and 0.5 <= slept[0] <= 0.6 and result.provider_id == "b"
    # the next task, inside the retry-after the second rejection asked for, does not call "a" at all
    second = await router.route(_task("t2"))
    assert [a.provider_id for a in second.attempts] == ["b"]
    assert second.decision.skipped["a"].startswith("rate_limited: cooling off")


async def test_no_capable_provider_fails_with_a_reason() -> None:
    router = Router(_registry(a={"capabilities": ["bug_fix"]}))
    result = await router.route(_task())
    assert result.status == "failed" and "no provider" in (result.error or "")
    assert result.attempts == []


@pytest.mark.parametrize("first_attempt", [1, 4])
async def test_attempt_numbers_continue_from_first_attempt(first_attempt: int) -> None:
    router = Router(_registry(a={"priority": 1, "failure_rate": 1.0}, b={"priority": 2}))
    result = await router.route(_task(), first_attempt=first_attempt)
    assert [a.attempt for a in result.attempts] == [first_attempt, first_attempt + 1]


async def test_the_decision_records_the_estimate_the_task_was_priced_by() -> None:
    from providers import estimate_prompt_tokens

    router = Router(_registry(only={"priority": 1}))
    task = AITask(id="t", type="code_review", prompt="x" * 400, max_output_tokens=321)
    result = await router.route(task)
    assert result.decision.estimate == DecisionEstimate(
        prompt_tokens=estimate_prompt_tokens(task), max_output_tokens=321
    )
    assert result.decision.estimate.prompt_tokens >= 100
