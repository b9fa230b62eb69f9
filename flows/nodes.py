"""What DAG nodes do, Prefect aside: reuse a recorded success, skip after a failed upstream, else route.

One Prefect task may run one node (small DAGs, for per-node visibility in the UI) or a whole ready level
(large DAGs: the routing engine routes the level's tasks concurrently, so the batch does not pay Prefect's
per-task cost for every item). Both go through `run_nodes`, which reads the ledger once, routes
concurrently on the engine loop and writes the results back in groups as they finish.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from flows.runtime import BatchRuntime
from ledger import TaskOutcome
from routing.loop import engine_loop
from routing.router import RoutedResult

# Finished tasks are written back in groups of this many (or when the level is done).
FLUSH_EVERY = 64


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
    runtime: BatchRuntime, task_ids: Sequence[str], on_flush: Callable[[int], None] | None = None
) -> list[NodeResult]:
    """Run the given nodes (whose upstream tasks have all finished); results in the order given."""
    ledger, spec, run = runtime.ledger, runtime.spec, runtime.run
    states = ledger.task_states(run.run_id)
    successes = ledger.recorded_successes(run.run_id)
    results: dict[str, NodeResult] = {}
    outcomes: list[TaskOutcome] = []
    to_route = []
    for task_id in task_ids:
        state = states.get(task_id)
        if state is not None and state.status == "completed":
            # The ledger is the source of truth: a recorded success is never executed (or charged) again.
            results[task_id] = NodeResult(task_id, "completed", output=state.output, reused=True)
            continue
        if task_id in successes:
            # Its successful attempt was committed but the process died before the task was marked done.
            provider_id, output = successes[task_id]
            results[task_id] = NodeResult(task_id, "completed", output=output, reused=True)
            outcomes.append(TaskOutcome(task_id=task_id, status="completed", provider_id=provider_id, output=output))
            continue
        task_spec = spec.task(task_id)
        upstream = {dep: states.get(dep) for dep in task_spec.depends_on}
        blocked = [dep for dep, s in upstream.items() if s is None or s.status != "completed"]
        if blocked:
            why = ", ".join(f"{dep} {s.status if s else 'missing'}" for dep, s in upstream.items() if dep in blocked)
            error = f"skipped: upstream not completed ({why})"
            results[task_id] = NodeResult(task_id, "skipped", error=error)
            outcomes.append(TaskOutcome(task_id=task_id, status="skipped", error=error))
            continue
        context = {dep: s.output or "" for dep, s in upstream.items() if s is not None}
        to_route.append(spec.to_ai_task(task_spec, context))
    ledger.finish_tasks(run.run_id, outcomes)

    if to_route:
        last_attempts = ledger.last_attempt_numbers(run.run_id)
        loop = engine_loop()
        futures: dict[concurrent.futures.Future[RoutedResult], str] = {}
        for task in to_route:
            coro = runtime.router.route(task, run, first_attempt=last_attempts.get(task.id, 0) + 1)
            try:
                futures[loop.submit(coro)] = task.id
            except concurrent.futures.CancelledError:
                break  # interrupted while submitting; the rest are marked cancelled below
        buffer: list[TaskOutcome] = []
        for done in concurrent.futures.as_completed(futures):
            task_id = futures[done]
            results[task_id], outcome = _outcome(task_id, done)
            buffer.append(outcome)
            if len(buffer) >= FLUSH_EVERY:
                ledger.finish_tasks(run.run_id, buffer)
                if on_flush:
                    on_flush(len(buffer))
                buffer = []
        for task in to_route:
            if task.id not in results:
                results[task.id], outcome = _cancelled(task.id)
                buffer.append(outcome)
        ledger.finish_tasks(run.run_id, buffer)
        if on_flush and buffer:
            on_flush(len(buffer))
    return [results[t] for t in task_ids]


def _cancelled(task_id: str) -> tuple[NodeResult, TaskOutcome]:
    error = "cancelled (interrupted)"
    return NodeResult(task_id, "cancelled", error=error), TaskOutcome(task_id=task_id, status="cancelled", error=error)


def _outcome(task_id: str, done: concurrent.futures.Future[RoutedResult]) -> tuple[NodeResult, TaskOutcome]:
    try:
        routed = done.result()
    except concurrent.futures.CancelledError:
        return _cancelled(task_id)
    output = routed.response.text if routed.response else None
    node = NodeResult(task_id, routed.status, output=output, error=routed.error)
    return node, TaskOutcome(
        task_id=task_id,
        status=routed.status,
        provider_id=routed.provider_id,
        output=output,
        error=routed.error,
        decision=routed.decision,
    )
