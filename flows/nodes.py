"""What one DAG node does, Prefect aside: reuse a recorded success, skip after a failed upstream, else route."""

from __future__ import annotations

import concurrent.futures
from dataclasses import dataclass

from flows.runtime import BatchRuntime
from routing.loop import engine_loop


@dataclass(frozen=True, slots=True)
class NodeResult:
    task_id: str
    status: str  # completed | failed | skipped | cancelled
    output: str | None = None
    error: str | None = None
    reused: bool = False


def run_node(runtime: BatchRuntime, task_id: str) -> NodeResult:
    ledger, spec, run_id = runtime.ledger, runtime.spec, runtime.run.run_id
    state = ledger.task_state(run_id, task_id)
    if state is not None and state.status == "completed":
        # The ledger is the source of truth: a recorded success is never executed (or charged) again.
        return NodeResult(task_id, "completed", output=state.output, reused=True)

    task_spec = spec.task(task_id)
    upstream = {dep: ledger.task_state(run_id, dep) for dep in task_spec.depends_on}
    blocked = [dep for dep, s in upstream.items() if s is None or s.status != "completed"]
    if blocked:
        why = ", ".join(f"{dep} {upstream[dep].status if upstream[dep] else 'missing'}" for dep in blocked)
        error = f"skipped: upstream not completed ({why})"
        ledger.finish_task(run_id, task_id, status="skipped", error=error)
        return NodeResult(task_id, "skipped", error=error)

    context = {dep: s.output or "" for dep, s in upstream.items() if s is not None}
    ai_task = spec.to_ai_task(task_spec, context)
    first_attempt = ledger.last_attempt_number(run_id, task_id) + 1
    try:
        result = engine_loop().run(runtime.router.route(ai_task, runtime.run, first_attempt=first_attempt))
    except concurrent.futures.CancelledError:
        ledger.finish_task(run_id, task_id, status="cancelled", error="cancelled (interrupted)")
        return NodeResult(task_id, "cancelled", error="cancelled (interrupted)")
    output = result.response.text if result.response else None
    ledger.finish_task(
        run_id,
        task_id,
        status=result.status,
        provider_id=result.provider_id,
        output=output,
        error=result.error,
        decision=result.decision,
    )
    return NodeResult(task_id, result.status, output=output, error=result.error)
