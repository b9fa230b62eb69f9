"""The `process_batch` Prefect flow: one Prefect task per batch task, wired by `depends_on`."""

from __future__ import annotations

from typing import Any

from prefect import allow_failure, flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.futures import PrefectFuture, wait
from prefect.runtime import flow_run
from prefect.states import State
from prefect.task_runners import ThreadPoolTaskRunner

from flows.nodes import NodeResult, run_node
from flows.runtime import close_runtime, default_ledger, open_runtime, resolve_inputs, runtime_for, start_run
from flows.spec import BatchSpec
from flows.summary import run_summary
from ledger import Ledger

DEFAULT_MAX_WORKERS = 16


class NodeFailed(Exception):
    """A batch task ended failed after routing; recorded in the ledger, not retried by Prefect."""


def _retry_infrastructure_only(task: Any, task_run: TaskRun, state: State) -> bool:
    # Provider failures were already failed over inside the routing step; Prefect's retries are for
    # whole-step failures (a database hiccup, a crash in our code).
    try:
        state.result()
    except NodeFailed:
        return False
    except Exception:
        return True
    return False


@task(
    name="route-task",
    task_run_name="{task_id}",
    retries=2,
    retry_delay_seconds=[0.5, 2.0],
    retry_condition_fn=_retry_infrastructure_only,
    cache_policy=NO_CACHE,
    persist_result=False,
)
def execute_node(run_id: str, task_id: str) -> str | None:
    result: NodeResult = run_node(runtime_for(run_id), task_id)
    if result.status in ("failed", "cancelled"):
        raise NodeFailed(f"{task_id}: {result.error}")
    return result.output


@flow(name="process-batch", task_runner=ThreadPoolTaskRunner(max_workers=DEFAULT_MAX_WORKERS), persist_result=False)
def process_batch(
    spec: BatchSpec | str,
    providers: str | None = None,
    strategy: str | None = None,
    fresh: bool = False,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Run a batch spec (a path or an inline spec) through the routing step; returns the run's totals."""
    batch, config, chosen = resolve_inputs(spec, providers, strategy)
    ledger = default_ledger()
    resumed = run_id is not None
    if run_id is None:
        run_id, resumed = start_run(ledger, batch, chosen, fresh=fresh)
    ledger.set_flow_run_id(run_id, flow_run.get_id())
    logger = get_run_logger()
    logger.info(
        "run %s (%s) of batch %r: %d tasks", run_id, "resumed" if resumed else "new", batch.name, len(batch.tasks)
    )
    open_runtime(batch, config, chosen, run_id=run_id, resumed=resumed, ledger=ledger)
    try:
        futures: dict[str, PrefectFuture[str | None]] = {}
        for layer in batch.layers():
            for t in layer:
                upstream = [allow_failure(futures[d]) for d in t.depends_on]
                futures[t.id] = execute_node.submit(run_id, t.id, wait_for=upstream)
        wait(list(futures.values()))
    finally:
        close_runtime(run_id)
    return finish_run(ledger, run_id)


def finish_run(ledger: Ledger, run_id: str) -> dict[str, Any]:
    """Mark the run completed or failed from its tasks, publish the table artifact and return the totals."""
    states = ledger.task_states(run_id)
    all_done = all(s.status == "completed" for s in states.values())
    ledger.finish_run(run_id, "completed" if all_done else "failed")
    summary = run_summary(ledger, run_id)
    create_table_artifact(
        table=[
            {
                "task": t["id"],
                "status": t["status"],
                "provider": t["provider"] or "",
                "attempts": len(t["attempts"]),
                "tokens": sum(a["tokens"]["input"] + a["tokens"]["output"] for a in t["attempts"]),
                "cost_usd": round(t["cost_usd"], 6),
                "latency_ms": round(t["latency_ms"], 1),
            }
            for t in summary["tasks"]
        ],
        key=f"switchboard-{run_id.lower()}",
        description=f"Switchboard run {run_id}: who served what at what cost",
    )
    return {"run_id": run_id, "status": summary["run"]["status"], "totals": summary["totals"]}


def batch_flow(max_workers: int) -> Any:
    """`process_batch` with the thread pool sized from config."""
    return process_batch.with_options(task_runner=ThreadPoolTaskRunner(max_workers=max_workers))


__all__ = ["batch_flow", "finish_run", "process_batch"]
