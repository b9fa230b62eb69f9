"""A run's `--json` object when its ledger went away mid-run: built from what this process knows instead.

Each task of the spec is listed, in the spec's order, with the newest of what is known of it: the result its
node reached in this process (`KnownState.results`), else its final state waiting in the spool, else a successful
attempt waiting there (completed), else its state when the run was read at its start (completed in an earlier
run, or pending). Its `attempts` are those waiting in
the spool: the ledger took the others before it went away, and `show` lists them once it is back. `totals`
counts the tasks by those statuses; its cost and attempts cover the listed (spooled) attempts only.
"""

from __future__ import annotations

from collections import defaultdict

from batches.run_state import KnownState
from batches.spec import BatchSpec
from batches.summary import AttemptSummary, RunHeader, RunSummary, RunTotals, TaskSummary
from ledger import AttemptRecord, RunStatus, SpoolItem, TaskOutcome, TaskStatus


def summary_without_ledger(
    spec: BatchSpec,
    header: RunHeader,
    memory: KnownState | None,
    spooled: list[SpoolItem],
) -> RunSummary:
    """The run as this process knows it; `spooled`: the run's rows waiting in the spool, in the order written."""
    attempts: dict[str, list[AttemptRecord]] = defaultdict(list)
    outcomes: dict[str, TaskOutcome] = {}
    for item in spooled:
        if isinstance(item, AttemptRecord):
            attempts[item.task_id].append(item)
        else:
            outcomes[item[1].task_id] = item[1]  # a later final state replaces an earlier one
    tasks: list[TaskSummary] = []
    counts = dict.fromkeys(TaskStatus, 0)
    for task in spec.tasks:
        own = sorted(attempts.get(task.id, []), key=lambda a: a.attempt)
        status, provider, output, error = _known(task.id, memory, outcomes.get(task.id), own)
        tasks.append(
            TaskSummary(
                id=task.id,
                type=task.type,
                status=status,
                provider=provider if status == TaskStatus.COMPLETED else None,
                attempts=[AttemptSummary.of(a) for a in own],
                output=output,
                error=error,
                cost_usd=sum(a.cost_usd for a in own),
            )
        )
        counts[status] += 1
    totals = RunTotals(
        **{status.value: n for status, n in counts.items()},
        cost_usd=sum(t.cost_usd for t in tasks),
        attempts=sum(len(t.attempts) for t in tasks),
        spooled_rows=len(spooled),
    )
    return RunSummary(run=header.model_copy(update={"status": RunStatus.INTERRUPTED}), tasks=tasks, totals=totals)


def _known(
    task_id: str, memory: KnownState | None, spooled: TaskOutcome | None, attempts: list[AttemptRecord]
) -> tuple[TaskStatus, str | None, str | None, str | None]:
    """(status, provider, output, error) of a task, from the newest source that knows it."""
    result = memory.results.get(task_id) if memory is not None else None
    if result is not None:
        return result.status, result.provider, result.output, result.error
    if spooled is not None:
        return spooled.status, spooled.provider_id, spooled.output, spooled.error
    success = next((a for a in attempts if a.outcome == "success"), None)
    if success is not None:  # answered, and the process stopped before the task's final state was written
        return TaskStatus.COMPLETED, success.provider_id, success.output, None
    state = memory.states.get(task_id) if memory is not None else None
    if state is not None:
        return state.status, state.provider_id, state.output, state.error
    return TaskStatus.PENDING, None, None, None


__all__ = ["summary_without_ledger"]
