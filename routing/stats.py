"""In-memory figures the strategies read per decision: latency EWMAs, in-flight counts, adaptive scores.

All updates and lookups are O(1) dict operations so a decision never waits on the ledger; the ledger feeds
`AdaptiveScores.refresh` in the background with the ledger's `HistoryRecord` rows (routing takes records, not a
session, so imports keep running one way). Not thread-safe by design: the engine owns them on one event loop.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ledger import HistoryRecord


def _check_alpha(alpha: float) -> float:
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    return alpha


class LatencyStats:
    """EWMA of latency (ms) per (provider_id, task_type) and per provider across task types."""

    __slots__ = ("_alpha", "_by_key", "_by_provider")

    def __init__(self, alpha: float = 0.3) -> None:
        self._alpha = _check_alpha(alpha)
        self._by_key: dict[tuple[str, str], float] = {}
        self._by_provider: dict[str, float] = {}

    def observe(self, provider_id: str, task_type: str, latency_ms: float) -> None:
        """Fold one measured latency in; the first sample of a key is taken as is."""
        a = self._alpha
        key = (provider_id, task_type)
        old = self._by_key.get(key)
        self._by_key[key] = latency_ms if old is None else old + a * (latency_ms - old)
        old = self._by_provider.get(provider_id)
        self._by_provider[provider_id] = latency_ms if old is None else old + a * (latency_ms - old)

    def get(self, provider_id: str, task_type: str) -> float | None:
        """Latency for this task type, else the provider-wide figure (a new task type on a known provider)."""
        value = self._by_key.get((provider_id, task_type))
        return value if value is not None else self._by_provider.get(provider_id)

    def provider(self, provider_id: str) -> float | None:
        return self._by_provider.get(provider_id)


class InFlight:
    """Calls currently running per provider."""

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def begin(self, provider_id: str) -> None:
        self._counts[provider_id] = self._counts.get(provider_id, 0) + 1

    def end(self, provider_id: str) -> None:
        # Never below zero: an unmatched end must not make a provider look emptier than it is.
        count = self._counts.get(provider_id, 0)
        if count > 0:
            self._counts[provider_id] = count - 1

    def get(self, provider_id: str) -> int:
        return self._counts.get(provider_id, 0)

    def total(self) -> int:
        return sum(self._counts.values())


@dataclass(slots=True)
class _Tally:
    attempts: float
    successes: float
    latency_ms: float | None
    cost_usd: float | None
    score: float = 0.0


# Below this many attempts on a task type a provider's success rate there is not known yet.
MIN_ATTEMPTS_FOR_RATE = 5


class AdaptiveScores:
    """A score per (provider_id, task_type) for the `adaptive` strategy; higher is better.

        success_rate = (successes + prior_successes) / (attempts + prior_successes + prior_failures)
        score        = success_rate / (1 + latency_weight * latency_s + cost_weight * cost_usd)

    The Beta prior (Laplace's rule with the defaults 1 and 1) keeps a provider with 1 success out of 1 from
    outranking one with 95 out of 100, and gives a provider with no history a rate of 0.5. Unknown latency or
    cost adds no penalty. With the default weights 10 s of latency, or $0.01 per successful task, halves a
    score.

    `refresh` replaces everything with the ledger's aggregate (which already holds every live attempt, so
    nothing is double-counted; the ledger query's time window decides how fast old failures are forgotten).
    `observe` folds single attempts in between refreshes: counts add up, the latency median is approximated
    by an EWMA, cost is a running mean over successes. Latency and cost are taken from successes only,
    because a failed call's duration (instant 4xx, or a timeout) says nothing about serving the task.
    Callers do not observe attempts that failed through their own fault (bad_request, budget_exceeded,
    cancelled).
    """

    __slots__ = ("_alpha", "_cost_weight", "_latency_weight", "_prior_failures", "_prior_successes", "_tallies")

    def __init__(
        self,
        *,
        latency_weight: float = 0.1,
        cost_weight: float = 100.0,
        prior_successes: float = 1.0,
        prior_failures: float = 1.0,
        alpha: float = 0.3,
    ) -> None:
        if latency_weight < 0 or cost_weight < 0:
            raise ValueError("weights must not be negative")
        if prior_successes <= 0 or prior_failures <= 0:
            raise ValueError("prior counts must be positive")
        self._latency_weight = latency_weight
        self._cost_weight = cost_weight
        self._prior_successes = prior_successes
        self._prior_failures = prior_failures
        self._alpha = _check_alpha(alpha)
        self._tallies: dict[tuple[str, str], _Tally] = {}

    @property
    def prior_score(self) -> float:
        """The score of a provider with no history at all."""
        return self._prior_successes / (self._prior_successes + self._prior_failures)

    def get(self, provider_id: str, task_type: str) -> float | None:
        """The score, or None when this provider has no history for this task type."""
        tally = self._tallies.get((provider_id, task_type))
        return None if tally is None else tally.score

    def success_rate(self, provider_id: str, task_type: str, min_attempts: int = MIN_ATTEMPTS_FOR_RATE) -> float | None:
        """The provider's success rate on this task type (with the prior), or None before `min_attempts`."""
        tally = self._tallies.get((provider_id, task_type))
        if tally is None or tally.attempts < min_attempts:
            return None
        prior_s, prior_f = self._prior_successes, self._prior_failures
        return (tally.successes + prior_s) / (tally.attempts + prior_s + prior_f)

    def refresh(self, records: Iterable[HistoryRecord]) -> None:
        """Replace all scores with ones computed from the ledger's aggregated rows."""
        tallies: dict[tuple[str, str], _Tally] = {}
        for r in records:
            tally = _Tally(float(r.attempts), float(r.successes), r.latency_ms, r.cost_usd)
            tally.score = self._score(tally)
            tallies[(r.provider_id, r.task_type)] = tally
        # Swap in one assignment so a reader never sees a half-refreshed table.
        self._tallies = tallies

    def observe(self, provider_id: str, task_type: str, ok: bool, latency_ms: float, cost_usd: float) -> None:
        """Fold one attempt's outcome in."""
        key = (provider_id, task_type)
        tally = self._tallies.get(key)
        if tally is None:
            tally = self._tallies[key] = _Tally(0.0, 0.0, None, None)
        tally.attempts += 1
        if ok:
            tally.successes += 1
            old = tally.latency_ms
            tally.latency_ms = latency_ms if old is None else old + self._alpha * (latency_ms - old)
            old = tally.cost_usd
            # Running mean over successes; a refreshed row's mean continues with its own success count.
            tally.cost_usd = cost_usd if old is None else old + (cost_usd - old) / tally.successes
        tally.score = self._score(tally)

    def _score(self, t: _Tally) -> float:
        rate = (t.successes + self._prior_successes) / (t.attempts + self._prior_successes + self._prior_failures)
        penalty = 1.0
        if t.latency_ms is not None:
            penalty += self._latency_weight * t.latency_ms / 1000
        if t.cost_usd is not None:
            penalty += self._cost_weight * t.cost_usd
        return rate / penalty

    def __len__(self) -> int:
        return len(self._tallies)
