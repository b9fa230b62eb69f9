"""A run's life in the ledger: started or resumed (and claimed), checked against its spec, ended from its tasks'
states, or interrupted."""

from __future__ import annotations

import time

from batches.ownership import owner_active, this_owner
from batches.spec import BatchSpec, SpecError
from ledger import Ledger, NewTask, RunStatus, TaskOutcome, TaskStatus
from providers import Priority
from routing import engine_loop

# How long in-flight calls get to record their cancellation after Ctrl-C before we mark the rest ourselves.
CANCEL_GRACE_S = 5.0
CANCELLED = "cancelled (interrupted)"


def start_run(ledger: Ledger, spec: BatchSpec, strategy: str, *, fresh: bool = False) -> tuple[str, bool]:
    """Start or resume the spec's run, claimed for this process; RunInProgress if another live one has it."""
    tasks = [
        NewTask(
            task_id=t.id,
            task_type=t.type,
            priority=(t.priority or spec.defaults.priority or Priority.NORMAL).value,
            team=t.team or spec.team,
        )
        for t in spec.tasks
    ]
    return ledger.start_or_resume_run(
        batch_name=spec.name,
        batch_hash=spec.content_hash(),
        team=spec.team,
        strategy=strategy,
        tasks=tasks,
        fresh=fresh,
        owner=this_owner(),
        owner_active=owner_active,
    )


def check_same_spec(ledger: Ledger, run_id: str, spec: BatchSpec) -> None:
    """A run handed to the flow by its starter must be of this spec (a spec file may change in between)."""
    run = ledger.get_run(run_id)
    if run is None:
        raise SpecError(spec.name, [f"run {run_id} is not in the ledger"])
    if run.batch_hash != spec.content_hash():
        raise SpecError(spec.name, [f"the spec changed after run {run_id} was started from it; run it again"])


def end_run(ledger: Ledger, run_id: str) -> bool:
    """Mark the run completed when every task completed, else failed; True when it completed."""
    all_done = set(ledger.task_status_counts(run_id)) == {TaskStatus.COMPLETED}
    ledger.finish_run(run_id, RunStatus.COMPLETED if all_done else RunStatus.FAILED)
    return all_done


def interrupt_run(ledger: Ledger, run_id: str) -> None:
    """Cancel in-flight provider calls, wait briefly for them to record, and mark the unfinished tasks cancelled
    (they run again when the same spec is run again)."""
    loop = engine_loop()
    loop.cancel_all()
    deadline = time.monotonic() + CANCEL_GRACE_S
    while time.monotonic() < deadline and loop.in_flight() > 0:
        time.sleep(0.05)
    unfinished = [s.task_id for s in ledger.task_states(run_id).values() if s.status == TaskStatus.PENDING]
    if unfinished:  # one transaction, not one per task (a 1,000-task run interrupted at its start)
        cancelled = [TaskOutcome(task_id=t, status=TaskStatus.CANCELLED, error=CANCELLED) for t in unfinished]
        ledger.finish_tasks(run_id, cancelled)
    ledger.finish_run(run_id, RunStatus.INTERRUPTED)


__all__ = ["CANCELLED", "CANCEL_GRACE_S", "check_same_spec", "end_run", "interrupt_run", "start_run"]
