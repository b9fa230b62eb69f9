"""What a failover is, defined once: after a failed attempt, the task's next attempt went to another provider
(to the same provider, it is a retry).

Counted in Python over one task's attempts (run summaries, what-if replays) and in SQL over the attempt rows
(the usage report's performance and routing tables), from the one pairing and the one test below.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

from sqlalchemy import ColumnElement, and_, case

from ledger.records import AttemptRecord

SUCCESS = "success"
FAILOVER, RETRY = "failover", "retry"


def is_failover(before: AttemptRecord, after: AttemptRecord) -> bool:
    """`after` (the task's next attempt) moved to another provider because `before` failed."""
    return before.outcome != SUCCESS and after.provider_id != before.provider_id


def count_failovers(attempts: Sequence[AttemptRecord]) -> int:
    """Moves to another provider after a failed attempt, over one task's attempts in attempt order."""
    return sum(1 for before, after in pairwise(attempts) if is_failover(before, after))


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
    """SQL: `failover` when the move after a failure went to another provider, `retry` when it stayed."""
    return case((prev.c.provider_id == cur.c.provider_id, RETRY), else_=FAILOVER)


__all__ = ["FAILOVER", "RETRY", "count_failovers", "follows_failure", "is_failover", "move_kind"]
