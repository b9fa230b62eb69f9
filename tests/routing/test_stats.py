"""Latency EWMAs, in-flight counts and adaptive scores."""

from __future__ import annotations

import pytest

from ledger import HistoryRecord
from routing.stats import AdaptiveScores, InFlight, LatencyStats


def test_latency_first_sample_is_taken_as_is_then_smoothed() -> None:
    stats = LatencyStats(alpha=0.5)
    assert stats.get("p", "code_review") is None
    stats.observe("p", "code_review", 100.0)
    assert stats.get("p", "code_review") == 100.0
    stats.observe("p", "code_review", 200.0)
    assert stats.get("p", "code_review") == pytest.approx(150.0)


def test_latency_falls_back_to_the_provider_wide_figure_for_a_new_task_type() -> None:
    stats = LatencyStats(alpha=0.3)
    stats.observe("p", "code_review", 100.0)
    stats.observe("p", "summarize", 200.0)
    assert stats.provider("p") == pytest.approx(130.0)
    assert stats.get("p", "translate") == pytest.approx(130.0)
    assert stats.get("p", "summarize") == 200.0
    assert stats.get("other", "summarize") is None


@pytest.mark.parametrize("alpha", [0.0, -0.1, 1.5])
def test_latency_rejects_alpha_outside_unit_interval(alpha: float) -> None:
    with pytest.raises(ValueError, match="alpha"):
        LatencyStats(alpha=alpha)


def test_in_flight_counts_per_provider_and_never_goes_negative() -> None:
    counts = InFlight()
    counts.begin("a")
    counts.begin("a")
    counts.begin("b")
    counts.end("a")
    counts.end("c")
    assert (counts.get("a"), counts.get("b"), counts.get("c"), counts.total()) == (1, 1, 0, 2)
    counts.end("b")
    counts.end("b")
    assert counts.get("b") == 0


def test_adaptive_score_formula_with_laplace_prior() -> None:
    scores = AdaptiveScores(latency_weight=0.1, cost_weight=10.0)
    scores.refresh([HistoryRecord("p", "code_review", attempts=8, successes=8, latency_ms=2000.0, cost_usd=0.03)])
    # (8 + 1) / (8 + 2) = 0.9;  penalty 1 + 0.1 * 2 s + 10 * 0.03 = 1.5
    assert scores.get("p", "code_review") == pytest.approx(0.6)
    assert scores.get("p", "summarize") is None


def test_prior_keeps_one_lucky_success_below_a_long_good_record() -> None:
    scores = AdaptiveScores()
    scores.refresh(
        [
            HistoryRecord("lucky", "t", attempts=1, successes=1),
            HistoryRecord("steady", "t", attempts=100, successes=95),
        ]
    )
    assert scores.get("lucky", "t") == pytest.approx(2 / 3)
    assert scores.get("steady", "t") > scores.get("lucky", "t")  # type: ignore[operator]


def test_slower_and_dearer_providers_score_lower_at_equal_success() -> None:
    scores = AdaptiveScores()
    scores.refresh(
        [
            HistoryRecord("fast", "t", 50, 45, latency_ms=500.0, cost_usd=0.01),
            HistoryRecord("slow", "t", 50, 45, latency_ms=20_000.0, cost_usd=0.01),
            HistoryRecord("dear", "t", 50, 45, latency_ms=500.0, cost_usd=0.50),
        ]
    )
    fast, slow, dear = (scores.get(p, "t") for p in ("fast", "slow", "dear"))
    assert fast is not None and slow is not None and dear is not None
    assert fast > slow and fast > dear


def test_refresh_replaces_previous_scores() -> None:
    scores = AdaptiveScores()
    scores.refresh([HistoryRecord("a", "t", 10, 5), HistoryRecord("b", "t", 10, 5)])
    scores.observe("c", "t", ok=True, latency_ms=100.0, cost_usd=0.0)
    scores.refresh([HistoryRecord("a", "t", 10, 10)])
    assert len(scores) == 1
    assert scores.get("b", "t") is None
    assert scores.get("a", "t") == pytest.approx(11 / 12)


def test_observe_moves_the_score_with_live_outcomes() -> None:
    scores = AdaptiveScores(latency_weight=0.0, cost_weight=0.0)
    scores.observe("p", "t", ok=True, latency_ms=100.0, cost_usd=0.01)
    assert scores.get("p", "t") == pytest.approx(2 / 3)
    scores.observe("p", "t", ok=False, latency_ms=30_000.0, cost_usd=0.0)
    assert scores.get("p", "t") == pytest.approx(2 / 4)


def test_observe_continues_a_refreshed_row_and_takes_latency_and_cost_from_successes_only() -> None:
    scores = AdaptiveScores(latency_weight=1.0, cost_weight=1.0, alpha=0.5)
    scores.refresh([HistoryRecord("p", "t", attempts=3, successes=2, latency_ms=1000.0, cost_usd=0.5)])
    scores.observe("p", "t", ok=False, latency_ms=60_000.0, cost_usd=9.0)  # ignored for latency and cost
    scores.observe("p", "t", ok=True, latency_ms=3000.0, cost_usd=0.2)
    # 4 of 5 successes: (3 + 1) / (5 + 2); latency EWMA 2000 ms; cost mean (0.5 * 2 + 0.2) / 3 = 0.4
    assert scores.get("p", "t") == pytest.approx((4 / 7) / (1 + 2.0 + 0.4))


def test_prior_score_is_the_rate_of_no_history() -> None:
    assert AdaptiveScores().prior_score == 0.5
    assert AdaptiveScores(prior_successes=3, prior_failures=1).prior_score == 0.75


def test_adaptive_scores_reject_bad_parameters() -> None:
    with pytest.raises(ValueError):
        AdaptiveScores(latency_weight=-1)
    with pytest.raises(ValueError):
        AdaptiveScores(prior_failures=0)
    with pytest.raises(ValueError):
        AdaptiveScores(alpha=2)


def test_history_record_is_frozen() -> None:
    record = HistoryRecord("p", "t", 1, 1)
    with pytest.raises(AttributeError):
        record.attempts = 2  # type: ignore[misc]


def test_by_default_a_few_cents_per_answer_outweigh_a_few_seconds() -> None:
    # The API answers in 1 s at $0.03 a task; the paid-for seat (charged nothing) in 5 s. Money matters: the seat.
    scores = AdaptiveScores()
    scores.refresh(
        [
            HistoryRecord("api", "code_review", 50, 49, latency_ms=1000.0, cost_usd=0.03),
            HistoryRecord("seat", "code_review", 50, 49, latency_ms=5000.0, cost_usd=0.0),
        ]
    )
    assert scores.get("seat", "code_review") > scores.get("api", "code_review")  # type: ignore[operator]
