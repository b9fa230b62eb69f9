"""The local_mock provider: deterministic answers, reproducible failures, a server-side quota, priced usage."""

from __future__ import annotations

import pytest

from providers import AITask, ExecutionContext, ProviderError, QuotaExhausted
from providers.errors import ERRORS_BY_OUTCOME
from providers.local_mock import LocalMockConfig, LocalMockProvider


def _mock(clock: list[float] | None = None, **settings: object) -> LocalMockProvider:
    config = LocalMockConfig(latency_ms=0, **settings)  # type: ignore[arg-type]
    if clock is None:
        return LocalMockProvider("mock", config)
    return LocalMockProvider("mock", config, clock=lambda: clock[0])


def _task(task_id: str = "t1", task_type: str = "code_review", prompt: str = "Review the parser") -> AITask:
    return AITask(id=task_id, type=task_type, prompt=prompt)


async def test_same_task_same_text_and_type_specific_texts() -> None:
    mock = _mock()
    first = await mock.execute_task(_task(), ExecutionContext())
    again = await _mock().execute_task(_task(), ExecutionContext(attempt=2))
    assert first.text == again.text and first.text.startswith("Code review:")
    summary = await mock.execute_task(_task(task_type="summarization"), ExecutionContext())
    assert summary.text.startswith("Summary:")
    other = await mock.execute_task(_task(prompt="Review the lexer"), ExecutionContext())
    assert other.text != first.text or other.usage != first.usage


async def test_usage_and_cost_follow_configured_prices() -> None:
    mock = _mock(prices={"*": {"input": 2.0, "output": 10.0}})
    response = await mock.execute_task(_task(), ExecutionContext())
    expected = (response.usage.input * 2.0 + response.usage.output * 10.0) / 1e6
    assert response.cost_usd == pytest.approx(expected)
    assert response.usage.input > 0 and response.usage.output > 0


@pytest.mark.parametrize("outcome", sorted(ERRORS_BY_OUTCOME.keys() - {"budget_exceeded", "cancelled"}))
async def test_failure_rate_one_raises_the_configured_error_class(outcome: str) -> None:
    mock = _mock(failure_rate=1.0, fail_with=outcome)
    with pytest.raises(ProviderError) as info:
        await mock.execute_task(_task(), ExecutionContext())
    assert type(info.value) is ERRORS_BY_OUTCOME[outcome]
    assert info.value.outcome == outcome and info.value.provider_id == "mock"


async def test_failures_are_reproducible_and_a_retry_can_succeed() -> None:
    async def pattern(seed: int) -> list[bool]:
        mock = _mock(failure_rate=0.5, seed=seed)
        results = []
        for i in range(40):
            for attempt in (1, 2):
                try:
                    await mock.execute_task(_task(f"t{i}"), ExecutionContext(attempt=attempt))
                    results.append(True)
                except ProviderError:
                    results.append(False)
        return results

    first, second = await pattern(7), await pattern(7)
    assert first == second
    assert 20 < sum(first) < 60  # about half of 80 calls fail
    # some task failed on attempt 1 and succeeded on attempt 2
    assert any(not a and b for a, b in zip(first[0::2], first[1::2], strict=True))
    assert await pattern(8) != first


async def test_quota_runs_out_then_resets_after_the_window() -> None:
    clock = [100.0]
    mock = _mock(clock, quota_requests=3, quota_reset_s=60)
    for i in range(3):
        await mock.execute_task(_task(f"t{i}"), ExecutionContext())
    with pytest.raises(QuotaExhausted) as info:
        await mock.execute_task(_task("t3"), ExecutionContext())
    assert info.value.reset_at is not None and info.value.retry_after_s == pytest.approx(60)
    clock[0] += 30
    with pytest.raises(QuotaExhausted):
        await mock.execute_task(_task("t4"), ExecutionContext())
    clock[0] += 31
    assert (await mock.execute_task(_task("t5"), ExecutionContext())).text


async def test_capabilities_follow_config() -> None:
    assert _mock().capabilities().serves("anything")
    limited = _mock(capabilities=["code_review"])
    assert limited.capabilities().serves("code_review") and not limited.capabilities().serves("bug_fix")
