"""A routed task's one-line story names each attempt's provider and outcome, who was left out and why, cost."""

from __future__ import annotations

from datetime import UTC, datetime

from batches import routing_story
from ledger import AttemptRecord, DecisionCache, DecisionPreference, RouteDecision

_AT = datetime(2026, 12, 6, tzinfo=UTC)


def _attempt(n: int, provider: str, outcome: str, error_type: str | None = None, cost: float = 0.0) -> AttemptRecord:
    return AttemptRecord(
        run_id="r",
        task_id="t",
        provider_id=provider,
        task_type="code_review",
        attempt=n,
        outcome=outcome,
        error_type=error_type,
        cost_usd=cost,
        started_at=_AT,
        finished_at=_AT,
    )


def test_a_failover_is_told_with_its_reason_and_the_cost() -> None:
    attempts = [_attempt(1, "flaky", "unavailable", "simulated"), _attempt(2, "steady", "success", cost=3.9e-05)]
    story = routing_story("review-1", "completed", "steady", attempts, None)
    assert (
        story == "review-1 completed on steady · flaky: unavailable (simulated) → steady: ok · 1 failover · $0.000039"
    )


def test_providers_left_out_and_a_preference_are_told() -> None:
    decision = RouteDecision(
        strategy="priority_based",
        skipped={"flaky": "circuit_open"},
        preference=DecisionPreference("claude", None, False, "claude cannot take the task now (capability)"),
    )
    story = routing_story("t", "completed", "steady", [_attempt(1, "steady", "success")], decision)
    assert "left out: flaky (circuit_open)" in story
    assert "preferred claude: claude cannot take the task now (capability)" in story
    assert "failover" not in story


def test_a_failed_task_says_why() -> None:
    story = routing_story("t", "failed", None, [], None, "no provider can take task type 'x' now")
    assert story == "t failed · $0.000000 · no provider can take task type 'x' now"


def test_a_cache_hit_names_the_answer_it_was_served_and_the_saving() -> None:
    decision = RouteDecision(
        strategy="priority_based", chosen="cache", cache=DecisionCache("run-1", "map", "api", saved_usd=0.033)
    )
    story = routing_story("map", "completed", "cache", [_attempt(1, "cache", "success")], decision)
    assert story == (
        "map completed on cache · cache: ok · cache hit: the answer api gave run-1:map, saved $0.033000 · $0.000000"
    )
