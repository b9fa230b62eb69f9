"""Strategies: each orders a snapshot of eligible candidates, best first; the router tries them in that order.

A strategy sees plain `Candidate` snapshots, never the router or live provider objects, so it is pure and
cheap (a sort of about ten small records per decision). Filtering (capability, open circuits, quota) has
already happened; ties always fall back to config priority, then config order, so every order is total
and deterministic apart from `Adaptive`'s deliberate exploration.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Protocol, runtime_checkable


@dataclass(slots=True)
class Candidate:
    """What a strategy may know about one eligible provider at decision time.

    Not frozen: a frozen dataclass pays object.__setattr__ per field, and one is built per provider per
    decision. Strategies treat candidates as read-only snapshots."""

    provider_id: str
    # Lower goes first, as in the provider config.
    priority: int
    # Calls in flight plus tasks queued for a slot.
    in_flight: int
    max_concurrency: int
    # Latency EWMA for this task type; None until the provider has been measured.
    latency_ms: float | None
    est_cost_usd: float
    # 1.0 = the provider explicitly lists the task type, 0.5 = it serves every type.
    capability_match: float
    adaptive_score: float | None
    # Position in the config, the last tie-breaker.
    index: int = 0
    # Success rate on this task type (None until known); filled for `cost_based`.
    success_rate: float | None = None


@runtime_checkable
class Strategy(Protocol):
    name: str

    def order(self, candidates: Sequence[Candidate], task_type: str) -> list[Candidate]: ...


_by_priority = attrgetter("priority", "index")


class PriorityBased:
    """Config priority, then config order."""

    __slots__ = ()
    name: str = "priority_based"

    def order(self, candidates: Sequence[Candidate], task_type: str) -> list[Candidate]:
        return sorted(candidates, key=_by_priority)


class RoundRobin:
    """Each decision for a task type starts at the next candidate in priority order; the rest follow by priority.

    The counter is per task type so that a mix of task types does not skew the rotation of any one of them.
    It indexes the current candidate list, so when a provider drops out (open circuit) the rotation carries
    on over the remaining ones instead of restarting.
    """

    __slots__ = ("_next",)
    name: str = "round_robin"

    def __init__(self) -> None:
        self._next: dict[str, int] = {}

    def order(self, candidates: Sequence[Candidate], task_type: str) -> list[Candidate]:
        ordered = sorted(candidates, key=_by_priority)
        if len(ordered) < 2:
            return ordered
        turn = self._next.get(task_type, 0)
        self._next[task_type] = turn + 1
        first = ordered.pop(turn % len(ordered))
        ordered.insert(0, first)
        return ordered


def _load_key(c: Candidate) -> tuple[float, int, int]:
    # max(1, ...) so a misconfigured zero limit reads as "full" rather than dividing by zero.
    return (c.in_flight / max(1, c.max_concurrency), c.priority, c.index)


class LeastLoaded:
    """Lowest in_flight / max_concurrency first (queued tasks count as load), ties by priority."""

    __slots__ = ()
    name: str = "least_loaded"

    def order(self, candidates: Sequence[Candidate], task_type: str) -> list[Candidate]:
        return sorted(candidates, key=_load_key)


def _latency_key(c: Candidate) -> tuple[int, float, int, int]:
    latency = c.latency_ms
    if latency is None:
        # Unmeasured and idle: first, so it gets measured. Unmeasured but already being measured: last, so a
        # burst of decisions does not all wait on a provider whose speed is still a guess.
        return (0 if c.in_flight == 0 else 2, 0.0, c.priority, c.index)
    return (1, latency, c.priority, c.index)


class FastestResponse:
    """Lowest latency EWMA first, ties by priority.

    A provider with no latency yet goes first while it has no call in flight (one call measures it), and
    last while that call runs. The circuit breaker's probe limit bounds the damage if it turns out dead.
    """

    __slots__ = ()
    name: str = "fastest_response"

    def order(self, candidates: Sequence[Candidate], task_type: str) -> list[Candidate]:
        return sorted(candidates, key=_latency_key)


def _capability_key(c: Candidate) -> tuple[float, int, int]:
    return (-c.capability_match, c.priority, c.index)


class CapabilityBased:
    """Providers that explicitly list the task type before generalists, then by priority."""

    __slots__ = ()
    name: str = "capability_based"

    def order(self, candidates: Sequence[Candidate], task_type: str) -> list[Candidate]:
        return sorted(candidates, key=_capability_key)


# A provider that succeeds on fewer of a task type's calls than this is tried only after the others: a cheap
# provider that fails code tasks is not cheaper (each failure costs a call elsewhere and the time).
WEAK_SUCCESS_RATE = 0.7
# The rate assumed for a provider not measured on the task type yet: neither favoured nor pushed back.
UNMEASURED_SUCCESS_RATE = 0.9


def _expected_cost_key(c: Candidate) -> tuple[bool, float, float, int, int]:
    rate = c.success_rate
    known = UNMEASURED_SUCCESS_RATE if rate is None else rate
    # What a success costs here: the estimate over the chance this call is the one that succeeds.
    return (known < WEAK_SUCCESS_RATE, c.est_cost_usd, -known, c.priority, c.index)


class CostBased:
    """Cheapest per success first: the estimate (what the call is charged: a subscription login's calls cost
    nothing at the margin, so subscriptions already paid for go before metered APIs) over the provider's success
    rate on this task type; providers that fail the task type more often than `WEAK_SUCCESS_RATE` after the
    others; ties by the better success rate, then priority. Providers near a limit go last (the planner)."""

    __slots__ = ()
    name: str = "cost_based"

    def order(self, candidates: Sequence[Candidate], task_type: str) -> list[Candidate]:
        return sorted(candidates, key=_expected_cost_key)


class Adaptive:
    """Highest adaptive score first, ties by priority; with probability `epsilon` another candidate leads.

    Exploration picks uniformly among the candidates other than the best, so `epsilon` is the real rate at
    which the order departs from the scores: a provider that failed in the past but has recovered keeps
    getting some traffic and its score can climb back. A candidate without a score gets the mean of the
    known scores in this decision (0.5, the prior's rate, when none is known): it lands mid-pack, neither
    starved nor flooded before the ledger has anything on it.
    """

    __slots__ = ("_epsilon", "_rng")
    name: str = "adaptive"

    def __init__(self, epsilon: float = 0.05, rng: random.Random | None = None) -> None:
        if not 0 <= epsilon <= 1:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
        self._epsilon = epsilon
        self._rng = rng if rng is not None else random.Random()

    def order(self, candidates: Sequence[Candidate], task_type: str) -> list[Candidate]:
        n = len(candidates)
        if n < 2:
            return list(candidates)
        total = 0.0
        known = 0
        for c in candidates:
            if c.adaptive_score is not None:
                total += c.adaptive_score
                known += 1
        neutral = total / known if known else 0.5

        def key(c: Candidate) -> tuple[float, int, int]:
            score = c.adaptive_score
            return (-(neutral if score is None else score), c.priority, c.index)

        ordered = sorted(candidates, key=key)
        if self._epsilon and self._rng.random() < self._epsilon:
            ordered.insert(0, ordered.pop(self._rng.randrange(1, n)))
        return ordered


STRATEGIES: dict[str, Callable[[], Strategy]] = {
    "round_robin": RoundRobin,
    "least_loaded": LeastLoaded,
    "fastest_response": FastestResponse,
    "priority_based": PriorityBased,
    "capability_based": CapabilityBased,
    "cost_based": CostBased,
    "adaptive": Adaptive,
}


def make_strategy(name: str) -> Strategy:
    """A fresh strategy by its config name (strategies with state, like round_robin, are not shared)."""
    try:
        factory = STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; valid: {', '.join(sorted(STRATEGIES))}") from None
    return factory()
