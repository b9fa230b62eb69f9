"""The outcome runner: tiny hand-made weeks through the real routing engine on virtual time, counted by hand."""

from __future__ import annotations

import pytest

from planning import (
    WINDOW_S,
    WINDOW_TOKENS,
    Incident,
    SyntheticTask,
    SyntheticWeek,
    outcome_of,
    route_week,
    run_week,
)

SONNET = (3.0, 15.0)
GPT_41 = (2.0, 8.0)


def _task(
    n: int, at: float, kind: str = "classification", prompt: int = 1_000, output: int = 20, **kw
) -> SyntheticTask:
    return SyntheticTask(
        id=f"t{n:05d}",
        type=kind,
        arrival_s=at,
        priority=kw.pop("priority", "normal"),
        team="platform",
        prompt_tokens=prompt,
        output_tokens=output,
        max_output_tokens=64,
        **kw,
    )


def _price(price: tuple[float, float], prompt: int, output: int) -> float:
    return (prompt * price[0] + output * price[1]) / 1_000_000


def test_cost_counts_metered_calls_and_list_price_counts_every_call() -> None:
    # Round robin over the four: the subscription pool, the Anthropic API, the OpenAI API, the local model.
    tasks = tuple(_task(n, 100.0 * n, prompt=1_000 * n, output=10 * n) for n in range(1, 5))
    outcome = run_week(SyntheticWeek(seed=1, tasks=tasks, incidents=()), "round_robin")
    assert outcome.served == {"anthropic_api": 1, "claude_code": 1, "local_model": 1, "openai_api": 1}
    assert (outcome.tasks, outcome.completed, outcome.attempts, outcome.task_success_rate) == (4, 4, 4, 1.0)
    assert outcome.cost_usd == pytest.approx(_price(SONNET, 2_000, 20) + _price(GPT_41, 3_000, 30), abs=1e-4)
    # The pool's call at its list price too (what the CLI reports); the local model is free.
    assert outcome.list_price_usd == pytest.approx(outcome.cost_usd + _price(SONNET, 1_000, 10), abs=1e-4)
    assert outcome.quota_failures == 0


def test_a_pool_whose_every_window_is_used_up_fails_tasks_for_quota_until_a_window_ends() -> None:
    # Each call uses a whole 5-hour window of the seat it lands on; three seats take three tasks.
    big = WINDOW_TOKENS - 20
    tasks = (
        *(_task(n, 1_000.0 * (n - 1), prompt=big) for n in range(1, 5)),
        _task(5, WINDOW_S + 1.0, prompt=big),  # seat-a's window (opened at 0) has ended
    )
    runs = route_week(SyntheticWeek(seed=1, tasks=tasks, incidents=()), "priority_based", providers={"claude_code"})
    assert [str(r.result.status) for r in runs] == ["completed", "completed", "completed", "failed", "completed"]
    assert [r.result.response.subscription for r in runs if r.result.response] == [
        "seat-a",
        "seat-b",
        "seat-c",
        "seat-a",
    ]
    assert runs[3].result.attempts == []  # routing knew: every seat reported its window used up
    outcome = outcome_of(runs)
    assert outcome.quota_failures == 1
    assert outcome.task_success_rate == 0.8
    assert outcome.cost_usd == 0.0  # the seats are paid for already
    assert outcome.list_price_usd == pytest.approx(4 * _price(SONNET, big, 20), abs=1e-4)


def test_an_incident_fails_calls_over_and_the_task_time_counts_them() -> None:
    incident = Incident("anthropic", 0.0, 3_600.0, "unavailable")
    tasks = (_task(1, 10.0, "summarization", prompt=10_000, output=300),)
    runs = route_week(
        SyntheticWeek(seed=1, tasks=tasks, incidents=(incident,)),
        "priority_based",
        providers={"claude_code", "anthropic_api", "openai_api"},
    )
    attempts = runs[0].result.attempts
    assert [(a.provider_id, a.outcome) for a in attempts] == [
        ("claude_code", "unavailable"),
        ("anthropic_api", "unavailable"),
        ("openai_api", "success"),
    ]
    # Latency on the engine's (virtual) clock: the two failed calls' half second each, then the answer.
    assert [round(a.latency_ms) for a in attempts[:2]] == [500, 500]
    outcome = outcome_of(runs)
    assert outcome.p50_task_s == pytest.approx(1.0 + attempts[2].latency_ms / 1000, abs=0.1)
    assert outcome.cost_usd == pytest.approx(_price(GPT_41, 10_000, 300), abs=1e-4)


def test_a_task_not_answered_within_its_deadline_is_a_miss() -> None:
    tasks = (_task(1, 0.0, deadline_s=1.0), _task(2, 10.0, deadline_s=3_600.0), _task(3, 20.0))
    outcome = run_week(SyntheticWeek(seed=1, tasks=tasks, incidents=()), "priority_based")
    assert outcome.completed == 3
    assert outcome.deadline_misses == 1


def test_the_same_week_gives_the_same_figures() -> None:
    # Retries with backoff jitter (an overloaded vendor) and adaptive's exploration both draw from the seed.
    tasks = tuple(_task(n, 30.0 * n, "code_review", prompt=5_000, output=500) for n in range(1, 40))
    incidents = (Incident("anthropic", 0.0, 600.0, "overloaded"), Incident("openai", 300.0, 900.0, "timeout"))
    week = SyntheticWeek(seed=4, tasks=tasks, incidents=incidents)
    first = route_week(week, "adaptive")
    again = route_week(week, "adaptive")
    assert [[(a.provider_id, a.outcome, a.latency_ms) for a in r.result.attempts] for r in first] == [
        [(a.provider_id, a.outcome, a.latency_ms) for a in r.result.attempts] for r in again
    ]
    assert outcome_of(first) == outcome_of(again)
