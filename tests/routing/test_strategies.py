"""Each strategy's order on constructed candidate lists."""

from __future__ import annotations

import dataclasses
import random
from collections import Counter

import pytest

from routing.strategies import (
    STRATEGIES,
    Adaptive,
    Candidate,
    CapabilityBased,
    CostBased,
    FastestResponse,
    LeastLoaded,
    PriorityBased,
    RoundRobin,
    Strategy,
    make_strategy,
)

TASK = "code_review"


def cand(
    provider_id: str,
    *,
    priority: int = 5,
    in_flight: int = 0,
    max_concurrency: int = 4,
    latency_ms: float | None = 100.0,
    est_cost_usd: float = 0.01,
    capability_match: float = 1.0,
    adaptive_score: float | None = None,
    index: int = 0,
    success_rate: float | None = None,
) -> Candidate:
    return Candidate(
        provider_id=provider_id,
        priority=priority,
        in_flight=in_flight,
        max_concurrency=max_concurrency,
        latency_ms=latency_ms,
        est_cost_usd=est_cost_usd,
        capability_match=capability_match,
        adaptive_score=adaptive_score,
        index=index,
        success_rate=success_rate,
    )


def ids(candidates: list[Candidate]) -> list[str]:
    return [c.provider_id for c in candidates]


def test_priority_based_orders_by_priority_then_config_order() -> None:
    cs = [cand("c", priority=2, index=2), cand("a", priority=1, index=1), cand("b", priority=2, index=0)]
    assert ids(PriorityBased().order(cs, TASK)) == ["a", "b", "c"]


def test_round_robin_rotates_the_first_choice_and_keeps_the_rest_in_priority_order() -> None:
    cs = [cand("a", priority=1, index=0), cand("b", priority=2, index=1), cand("c", priority=3, index=2)]
    rr = RoundRobin()
    assert [ids(rr.order(cs, TASK)) for _ in range(4)] == [
        ["a", "b", "c"],
        ["b", "a", "c"],
        ["c", "a", "b"],
        ["a", "b", "c"],
    ]


def test_round_robin_keeps_a_separate_turn_per_task_type() -> None:
    cs = [cand("a", priority=1), cand("b", priority=2)]
    rr = RoundRobin()
    assert ids(rr.order(cs, "code_review"))[0] == "a"
    assert ids(rr.order(cs, "summarize"))[0] == "a"
    assert ids(rr.order(cs, "code_review"))[0] == "b"


def test_round_robin_spreads_evenly_when_a_candidate_drops_out() -> None:
    full = [cand("a", priority=1), cand("b", priority=2), cand("c", priority=3)]
    rr = RoundRobin()
    rr.order(full, TASK)
    firsts = Counter(ids(rr.order(full[:2], TASK))[0] for _ in range(10))
    assert firsts == {"a": 5, "b": 5}


def test_least_loaded_uses_load_fraction_then_priority() -> None:
    cs = [
        cand("busy", priority=1, in_flight=3, max_concurrency=4),  # 0.75
        cand("big", priority=3, in_flight=4, max_concurrency=16),  # 0.25
        cand("idle_low", priority=2, in_flight=0, max_concurrency=2),  # 0.0
        cand("idle_high", priority=1, in_flight=0, max_concurrency=8),  # 0.0, better priority
    ]
    assert ids(LeastLoaded().order(cs, TASK)) == ["idle_high", "idle_low", "big", "busy"]


def test_least_loaded_treats_zero_max_concurrency_as_full() -> None:
    cs = [cand("zero", priority=1, in_flight=1, max_concurrency=0), cand("half", priority=2, in_flight=2)]
    assert ids(LeastLoaded().order(cs, TASK)) == ["half", "zero"]


def test_fastest_response_orders_by_latency_then_priority() -> None:
    cs = [
        cand("slow", priority=1, latency_ms=900.0),
        cand("fast_b", priority=3, latency_ms=120.0),
        cand("fast_a", priority=2, latency_ms=120.0),
    ]
    assert ids(FastestResponse().order(cs, TASK)) == ["fast_a", "fast_b", "slow"]


def test_fastest_response_measures_an_idle_unknown_first_and_a_busy_unknown_last() -> None:
    cs = [
        cand("known", priority=1, latency_ms=50.0),
        cand("new_busy", priority=1, latency_ms=None, in_flight=1),
        cand("new_idle", priority=2, latency_ms=None, in_flight=0),
    ]
    assert ids(FastestResponse().order(cs, TASK)) == ["new_idle", "known", "new_busy"]


def test_capability_based_puts_specialists_before_generalists() -> None:
    cs = [
        cand("generalist", priority=1, capability_match=0.5),
        cand("specialist_b", priority=3, capability_match=1.0),
        cand("specialist_a", priority=2, capability_match=1.0),
    ]
    assert ids(CapabilityBased().order(cs, TASK)) == ["specialist_a", "specialist_b", "generalist"]


def test_cost_based_tries_a_free_provider_that_fails_the_task_type_after_the_paid_ones() -> None:
    cs = [
        cand("local", est_cost_usd=0.0, success_rate=0.35, priority=1),
        cand("api", est_cost_usd=0.05, success_rate=0.98, priority=3),
        cand("seat", est_cost_usd=0.0, success_rate=0.97, priority=2),
        cand("new", est_cost_usd=0.08, success_rate=None, priority=4),  # not measured yet: not pushed back
    ]
    assert ids(CostBased().order(cs, TASK)) == ["seat", "api", "new", "local"]


def test_cost_based_among_equal_estimates_prefers_the_better_success_rate() -> None:
    cs = [
        cand("shaky", est_cost_usd=0.0, success_rate=0.75, priority=1),
        cand("steady", est_cost_usd=0.0, success_rate=0.99),
    ]
    assert ids(CostBased().order(cs, TASK)) == ["steady", "shaky"]


def test_cost_based_orders_by_estimate_then_priority() -> None:
    cs = [
        cand("pricey", priority=1, est_cost_usd=0.50),
        cand("free_b", priority=2, est_cost_usd=0.0),
        cand("cheap", priority=1, est_cost_usd=0.02),
        cand("free_a", priority=1, est_cost_usd=0.0),
    ]
    assert ids(CostBased().order(cs, TASK)) == ["free_a", "free_b", "cheap", "pricey"]


def test_adaptive_orders_by_score_when_not_exploring() -> None:
    cs = [
        cand("mid", priority=1, adaptive_score=0.6),
        cand("best", priority=3, adaptive_score=0.9),
        cand("worst", priority=1, adaptive_score=0.1),
        cand("tie", priority=2, adaptive_score=0.6),
    ]
    assert ids(Adaptive(epsilon=0.0).order(cs, TASK)) == ["best", "mid", "tie", "worst"]


def test_adaptive_gives_unknown_scores_the_mean_of_known_ones() -> None:
    cs = [
        cand("high", priority=2, adaptive_score=0.9),
        cand("low", priority=2, adaptive_score=0.3),
        cand("new", priority=1, adaptive_score=None),  # neutral 0.6: between, not first or last
    ]
    assert ids(Adaptive(epsilon=0.0).order(cs, TASK)) == ["high", "new", "low"]
    unknown = [cand("b", priority=2, adaptive_score=None), cand("a", priority=1, adaptive_score=None)]
    assert ids(Adaptive(epsilon=0.0).order(unknown, TASK)) == ["a", "b"]


def test_adaptive_explores_at_rate_epsilon_and_moves_a_non_best_candidate_first() -> None:
    cs = [cand(f"p{i}", priority=i, adaptive_score=1.0 - i / 10) for i in range(5)]
    strategy = Adaptive(epsilon=0.2, rng=random.Random(7))
    orders = [ids(strategy.order(cs, TASK)) for _ in range(5000)]
    explored = [o for o in orders if o[0] != "p0"]
    assert 0.17 < len(explored) / len(orders) < 0.23
    # Every other candidate gets explored, and the rest of the order stays by score.
    assert {o[0] for o in explored} == {"p1", "p2", "p3", "p4"}
    assert all(o[1:] == [p for p in ["p0", "p1", "p2", "p3", "p4"] if p != o[0]] for o in explored)


def test_adaptive_is_reproducible_with_a_seeded_rng() -> None:
    cs = [cand(f"p{i}", priority=i, adaptive_score=0.5) for i in range(4)]
    a, b = Adaptive(epsilon=0.5, rng=random.Random(3)), Adaptive(epsilon=0.5, rng=random.Random(3))
    assert [ids(a.order(cs, TASK)) for _ in range(50)] == [ids(b.order(cs, TASK)) for _ in range(50)]


def test_adaptive_rejects_epsilon_outside_unit_interval() -> None:
    with pytest.raises(ValueError, match="epsilon"):
        Adaptive(epsilon=1.5)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_handles_empty_and_single_lists_and_keeps_all_candidates(name: str) -> None:
    strategy = make_strategy(name)
    assert isinstance(strategy, Strategy)
    assert strategy.name == name
    assert strategy.order([], TASK) == []
    one = [cand("only")]
    assert strategy.order(one, TASK) == one
    many = [cand(f"p{i}", priority=i % 3, index=i, latency_ms=float(10 * i) or None) for i in range(10)]
    ordered = strategy.order(many, TASK)
    assert sorted(ids(ordered)) == sorted(ids(many))
    assert [c.provider_id for c in many] == [f"p{i}" for i in range(10)]  # input not mutated


def test_make_strategy_returns_fresh_instances_and_rejects_unknown_names() -> None:
    assert make_strategy("round_robin") is not make_strategy("round_robin")
    with pytest.raises(ValueError, match="valid: adaptive, capability_based"):
        make_strategy("random")


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_strategies_leave_candidates_unchanged(name: str) -> None:
    # Candidates are plain (unfrozen, for speed) snapshots; no strategy may alter them.
    candidates = [cand("a", priority=2, in_flight=3), cand("b", priority=1, latency_ms=5.0)]
    before = [dataclasses.astuple(c) for c in candidates]
    make_strategy(name).order(candidates, "code_review")
    assert [dataclasses.astuple(c) for c in candidates] == before


async def test_cost_based_routing_learns_which_free_provider_fails_a_task_type() -> None:
    from providers import AITask
    from routing.router import RunInfo
    from tests.routing.engine_kit import engine

    prices = {"*": {"input": 1.0, "output": 1.0}}
    free = {"*": {"input": 0.0, "output": 0.0}}
    router = engine({"local": {"priority": 2, "prices": free}, "api": {"priority": 1, "prices": prices}})
    run = RunInfo(strategy="cost_based")
    task = AITask(id="t", type="bug_fix", prompt="fix it")
    assert (await router.route(task, run)).provider_id == "local"  # free, and nothing known against it yet
    for _ in range(10):  # what the ledger (or this run) saw: the local model fails bug fixes
        router.adaptive.observe("local", "bug_fix", False, 50.0, 0.0)
    assert (await router.route(AITask(id="u", type="bug_fix", prompt="fix it"), run)).provider_id == "api"
    summary = AITask(id="v", type="summarization", prompt="sum")
    assert (await router.route(summary, run)).provider_id == "local"
