"""What the nodes of a run know of its tasks: what finished, with which output, and how many attempts so far."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from ledger import Ledger, TaskState, TaskStatus


@dataclass(frozen=True, slots=True)
class NodeResult:
    task_id: str
    status: TaskStatus  # completed | failed | skipped | cancelled
    output: str | None = None
    error: str | None = None
    reused: bool = False
    provider: str | None = None  # the one that answered, when it completed
    # The routing outcome in one line (batches.story), for the run's log; None when nothing was routed.
    story: str | None = None


@dataclass(slots=True)
class KnownState:
    """The ledger's view of a run's tasks when it was read, plus the nodes finished since in this process.

    The process that runs a run's flow reads it once and keeps it (`BatchRuntime.memory`): its nodes then
    start without a query each. A process that runs only some of the nodes (a Dask worker) cannot know what
    the others did, so it reads the ledger for every batch of nodes.
    """

    states: dict[str, TaskState]
    successes: dict[str, tuple[str, str | None]]  # task -> (provider, output) of a recorded successful attempt
    last_attempts: dict[str, int]
    results: dict[str, NodeResult] = field(default_factory=dict)

    @classmethod
    def read(cls, ledger: Ledger, run_id: str, task_ids: Collection[str] | None = None) -> KnownState:
        """The run's tasks, or only `task_ids`, as the ledger has them now."""
        return cls(
            states=ledger.task_states(run_id, task_ids, decisions=False),  # nodes never read them
            successes=ledger.recorded_successes(run_id, task_ids),
            last_attempts=ledger.last_attempt_numbers(run_id, task_ids),
        )

    def upstream(self, task_id: str) -> tuple[TaskStatus | str, str | None]:
        """(status, output) of an upstream task: finished since the read, or as the ledger had it; `missing`
        for a task the ledger does not have."""
        if task_id in self.results:
            return self.results[task_id].status, self.results[task_id].output
        if task_id in self.successes:
            return TaskStatus.COMPLETED, self.successes[task_id][1]
        state = self.states.get(task_id)
        return (state.status, state.output) if state is not None else ("missing", None)


__all__ = ["KnownState", "NodeResult"]
