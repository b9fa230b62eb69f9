"""What DAG nodes do, Prefect aside: reuse a recorded success, skip after a failed upstream, else route.

One Prefect task may run one node (small DAGs, for per-node visibility in the UI) or a whole chunk of the
DAG (large DAGs). Both go through `run_nodes`: it reads the ledger once, then runs the nodes on the engine
loop, each starting as soon as its upstream tasks in the chunk finish (no waiting for a whole level), and
hands results to the group-committing ledger writer.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from flows.runtime import BatchRuntime
from ledger import TaskOutcome, TaskState
from routing.loop import engine_loop
from routing.router import RoutedResult

# How often a waiting chunk reports progress.
PROGRESS_EVERY_S = 1.0
MAX_SELECTED_IDS = 2000
CANCELLED_ERROR = "cancelled (interrupted)"


@dataclass(frozen=True, slots=True)
class NodeResult:
    task_id: str
    status: str  # completed | failed | skipped | cancelled
    output: str | None = None
    error: str | None = None
    reused: bool = False


def run_node(runtime: BatchRuntime, task_id: str) -> NodeResult:
    return run_nodes(runtime, [task_id])[0]


def run_nodes(
    runtime: BatchRuntime, task_ids: Sequence[str], on_progress: Callable[[], None] | None = None
) -> list[NodeResult]:
    """Run the given nodes, whose upstream tasks outside `task_ids` have finished; results in the order given."""
    ledger, run_id = runtime.ledger, runtime.run.run_id
    # Only these nodes and their upstream tasks: a per-node run reads a handful of rows per node, not the
    # whole run (with every output) once per node. Past a few thousand ids one scan of the run is cheaper
    # than a long IN list (and stays under the databases' bound-parameter limits).
    wanted = set(task_ids).union(*(runtime.spec.task(t).depends_on for t in task_ids))
    selected = wanted if len(wanted) <= MAX_SELECTED_IDS else None
    known = _KnownState(
        states=ledger.task_states(run_id, selected),
        successes=ledger.recorded_successes(run_id, selected),
        last_attempts=ledger.last_attempt_numbers(run_id, selected),
    )
    results: dict[str, NodeResult] = {}
    try:
        future = engine_loop().submit(_run_dag(runtime, list(task_ids), known, results))
        while True:
            try:
                future.result(timeout=PROGRESS_EVERY_S)
                break
            except concurrent.futures.TimeoutError:
                if on_progress:
                    on_progress()
    except concurrent.futures.CancelledError:
        pass  # interrupted: what finished is in `results`, the rest is marked cancelled below
    missing = [t for t in task_ids if t not in results]
    for task_id in missing:
        results[task_id] = NodeResult(task_id, "cancelled", error=CANCELLED_ERROR)
    if missing:
        ledger.finish_tasks(
            run_id, [TaskOutcome(task_id=t, status="cancelled", error=CANCELLED_ERROR) for t in missing]
        )
    if on_progress:
        on_progress()
    return [results[t] for t in task_ids]


@dataclass(frozen=True, slots=True)
class _KnownState:
    states: dict[str, TaskState]
    successes: dict[str, tuple[str, str | None]]
    last_attempts: dict[str, int]


async def _run_dag(
    runtime: BatchRuntime, task_ids: list[str], known: _KnownState, results: dict[str, NodeResult]
) -> None:
    finished = {task_id: asyncio.Event() for task_id in task_ids}
    writes: list[concurrent.futures.Future[None]] = []

    async def node(task_id: str) -> None:
        for dep in runtime.spec.task(task_id).depends_on:
            if dep in finished:
                await finished[dep].wait()
        result, outcome, routed = await _run_one(runtime, task_id, known, results)
        # Dependents may start on the answer now; the task is reported complete (the chunk finished) only
        # after its attempt rows and its outcome are committed. The writer commits in submission order, so
        # the outcome lands with its attempts (usually in the same transaction) or after them, never before.
        results[task_id] = result
        finished[task_id].set()
        if outcome is not None:
            writes.append(runtime.writer.submit_outcome(runtime.run.run_id, outcome))
        if routed is not None:
            await routed.committed()

    await asyncio.gather(*(node(t) for t in task_ids))
    for done in writes:  # task states are durable before the chunk reports back
        await asyncio.wrap_future(done)


async def _run_one(
    runtime: BatchRuntime, task_id: str, known: _KnownState, results: dict[str, NodeResult]
) -> tuple[NodeResult, TaskOutcome | None, RoutedResult | None]:
    state = known.states.get(task_id)
    if state is not None and state.status == "completed":
        # The ledger is the source of truth: a recorded success is never executed (or charged) again.
        return NodeResult(task_id, "completed", output=state.output, reused=True), None, None
    if task_id in known.successes:
        # Its successful attempt was committed but the process died before the task was marked done.
        provider_id, output = known.successes[task_id]
        outcome = TaskOutcome(task_id=task_id, status="completed", provider_id=provider_id, output=output)
        return NodeResult(task_id, "completed", output=output, reused=True), outcome, None

    task_spec = runtime.spec.task(task_id)
    upstream = {dep: _upstream(dep, known, results) for dep in task_spec.depends_on}
    blocked = {dep: status for dep, (status, _) in upstream.items() if status != "completed"}
    if blocked:
        error = "skipped: upstream not completed (" + ", ".join(f"{d} {s}" for d, s in blocked.items()) + ")"
        skipped = TaskOutcome(task_id=task_id, status="skipped", error=error)
        return NodeResult(task_id, "skipped", error=error), skipped, None

    task = runtime.spec.to_ai_task(task_spec, {dep: output or "" for dep, (_, output) in upstream.items()})
    first_attempt = known.last_attempts.get(task_id, 0) + 1
    routed = await runtime.router.route(task, runtime.run, first_attempt=first_attempt, durable=False)
    output = routed.response.text if routed.response else None
    outcome = TaskOutcome(
        task_id=task_id,
        status=routed.status,
        provider_id=routed.provider_id,
        output=output,
        error=routed.error,
        decision=routed.decision,
    )
    return NodeResult(task_id, routed.status, output=output, error=routed.error), outcome, routed


def _upstream(dep: str, known: _KnownState, results: dict[str, NodeResult]) -> tuple[str, str | None]:
    """(status, output) of an upstream task: finished in this chunk, or as the ledger had it."""
    if dep in results:
        return results[dep].status, results[dep].output
    if dep in known.successes:
        return "completed", known.successes[dep][1]
    state = known.states.get(dep)
    return (state.status, state.output) if state is not None else ("missing", None)
