"""What a move after a failed attempt is, defined once: the task's next attempt went to another provider (a
failover), to another subscription of the same provider (a rotation), or to the same one again (a retry).

Counted in Python over one task's attempts (run summaries, what-if replays) and in SQL over the attempt rows
(the usage report's totals, performance and routing tables), from the one pairing and the one rule below.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any, Protocol

from sqlalchemy import ColumnElement, and_, case

SUCCESS = "success"
FAILOVER, ROTATION, RETRY = "failover", "rotation", "retry"


class Attempt(Protocol):
    """What the rule reads of an attempt: an AttemptRecord, or a run summary's AttemptSummary."""

    @property
    def provider_id(self) -> str: ...
    @property
    def subscription(self) -> str | None: ...
    @property
    def outcome(self) -> str: ...


def is_failover(before: Attempt, after: Attempt) -> bool:
    """`after` (the task's next attempt) moved to another provider because `before` failed."""
    return before.outcome != SUCCESS and after.provider_id != before.provider_id


def is_rotation(before: Attempt, after: Attempt) -> bool:
    """`after` moved to another subscription of the same provider because `before` failed (not a failover)."""
    return (
        before.outcome != SUCCESS
        and after.provider_id == before.provider_id
        and None not in (before.subscription, after.subscription)
        and after.subscription != before.subscription
    )


def count_failovers(attempts: Sequence[Attempt]) -> int:
    """Moves to another provider after a failed attempt, over one task's attempts in attempt order."""
    return sum(1 for before, after in pairwise(attempts) if is_failover(before, after))


def count_rotations(attempts: Sequence[Attempt]) -> int:
    """Moves to another subscription of the same provider after a failed attempt, over one task's attempts."""
    return sum(1 for before, after in pairwise(attempts) if is_rotation(before, after))


def follows_failure(prev: Any, cur: Any) -> ColumnElement[bool]:
    """SQL, over two aliases of the attempt rows: `cur` is the same task's attempt right after `prev`, which
    failed: a move, a retry or a failover (`move_kind`)."""
    return and_(
        prev.c.run_id == cur.c.run_id,
        prev.c.task_id == cur.c.task_id,
        prev.c.attempt == cur.c.attempt - 1,
        prev.c.outcome != SUCCESS,
    )


def move_kind(prev: Any, cur: Any) -> ColumnElement[str]:
    """SQL: the kind of the move after a failure, `failover`, `rotation` or `retry` (as is_failover, is_rotation)."""
    other_subscription = and_(
        prev.c.subscription.is_not(None),
        cur.c.subscription.is_not(None),
        prev.c.subscription != cur.c.subscription,
    )
    return case((prev.c.provider_id != cur.c.provider_id, FAILOVER), (other_subscription, ROTATION), else_=RETRY)


__all__ = [
    "FAILOVER",
    "RETRY",
    "ROTATION",
    "count_failovers",
    "count_rotations",
    "follows_failure",
    "is_failover",
    "is_rotation",
    "move_kind",
]
