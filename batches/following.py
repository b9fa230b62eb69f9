"""Following a run that executes elsewhere (a worker, another terminal) from its ledger rows: the failovers and
rotations as they are recorded. Prefect-free; `switchboard watch` adds the flow run's state from Prefect."""

from __future__ import annotations

from dataclasses import dataclass

from ledger import AttemptRecord, Ledger, is_failover, is_rotation

# Rows re-read behind the last one seen: with several writers (PostgreSQL) a row numbered lower may commit later.
REREAD_ROWS = 1000


@dataclass(frozen=True, slots=True)
class Move:
    """A task's move after a failed attempt: to another provider (`failover`) or subscription (`rotation`)."""

    kind: str
    before: AttemptRecord
    after: AttemptRecord

    def describe(self) -> str:
        """`failover: review-3 flaky: unavailable → steady` (with subscriptions where they are known)."""
        return f"{self.kind}: {self.after.task_id} {_where(self.before)}: {self.before.outcome} → {_where(self.after)}"


class AttemptFeed:
    """The run's new attempts since the last read, and the moves they make; each attempt is reported once."""

    def __init__(self, ledger: Ledger, run_id: str) -> None:
        self._ledger, self._run_id = ledger, run_id
        self._row = 0
        self._seen: set[tuple[str, int]] = set()
        self._by_task: dict[str, dict[int, AttemptRecord]] = {}

    def poll(self) -> list[Move]:
        """Attempts recorded since the last poll, as the failovers and rotations they complete."""
        moves: list[Move] = []
        for row, attempt in self._ledger.attempts_after(self._run_id, max(self._row - REREAD_ROWS, 0)):
            self._row = max(self._row, row)
            key = (attempt.task_id, attempt.attempt)
            if key in self._seen:
                continue
            self._seen.add(key)
            mine = self._by_task.setdefault(attempt.task_id, {})
            mine[attempt.attempt] = attempt
            # Judged whenever both sides of a pair are known, whichever row came in first.
            for before, after in ((mine.get(attempt.attempt - 1), attempt), (attempt, mine.get(attempt.attempt + 1))):
                if before is None or after is None:
                    continue
                if is_failover(before, after):
                    moves.append(Move("failover", before, after))
                elif is_rotation(before, after):
                    moves.append(Move("rotation", before, after))
        return moves


def _where(a: AttemptRecord) -> str:
    return f"{a.provider_id}/{a.subscription}" if a.subscription else a.provider_id


__all__ = ["REREAD_ROWS", "AttemptFeed", "Move"]
