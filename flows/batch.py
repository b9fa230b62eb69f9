"""The `process_batch` Prefect flow.

Two shapes, chosen by size (`runner.chunk_threshold`, overridable with `mode`):
- per_node: one Prefect task per batch task, submitted with `wait_for` its dependencies; each node is visible
  in the Prefect UI;
- chunked: one Prefect task per DAG level; the routing engine routes the level's tasks concurrently inside
  it, so a 1,000-task batch does not pay Prefect's per-task cost 1,000 times. Every item is still a row in
  the ledger and in the run's table artifact.
"""

from __future__ import annotations

from typing import Any, Literal

from prefect import allow_failure, flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.futures import PrefectFuture, as_completed
from prefect.runtime import flow_run
from prefect.states import State
from prefect.task_runners import ThreadPoolTaskRunner

from flows.artifacts import failover_markdown, publish_run_table
from flows.nodes import NodeResult, run_node, run_nodes
from flows.runtime import close_runtime, default_ledger, open_runtime, resolve_inputs, runtime_for, start_run
from flows.spec import BatchSpec
from flows.summary import run_summary
from ledger import Ledger
from routing.config import Budget, SwitchboardConfig

DEFAULT_MAX_WORKERS = 16
Mode = Literal["auto", "per_node", "chunked"]


class NodeFailed(Exception):
    """A batch task ended failed after routing; recorded in the ledger, not retried by Prefect."""


def _retry_infrastructure_only(task: Any, task_run: TaskRun, state: State) -> bool:
    # Provider failures were already failed over inside the routing step; Prefect's retries are for
    # whole-step failures (a database hiccup, a crash in our code). The ledger makes them safe to repeat.
    try:
        state.result()
    except NodeFailed:
        return False
    except Exception:
        return True
    return False


_TASK_OPTIONS: dict[str, Any] = {
    "retries": 2,
    "retry_delay_seconds": [0.5, 2.0],
    "retry_condition_fn": _retry_infrastructure_only,
    "cache_policy": NO_CACHE,  # the ledger, not Prefect's result cache, decides what finished
    "persist_result": False,
}


@task(name="route-task", task_run_name="{task_id}", **_TASK_OPTIONS)
def execute_node(run_id: str, task_id: str) -> str | None:
    result: NodeResult = run_node(runtime_for(run_id), task_id)
    if result.status in ("failed", "cancelled"):
        raise NodeFailed(f"{task_id}: {result.error}")
    return result.output


@task(name="route-level", task_run_name="level-{level} ({size} tasks)", **_TASK_OPTIONS)
def execute_level(run_id: str, level: int, size: int, task_ids: list[str], progress_id: str | None) -> dict[str, int]:
    runtime = runtime_for(run_id)
    total = len(runtime.spec.tasks)
    counts: dict[str, int] = {}
    for result in run_nodes(
        runtime, task_ids, on_flush=lambda _: _progress(runtime.ledger, run_id, total, progress_id)
    ):
        counts[result.status] = counts.get(result.status, 0) + 1
    return counts


def _progress(ledger: Ledger, run_id: str, total: int, progress_id: str | None) -> None:
    if progress_id is None:
        return
    finished = sum(1 for s in ledger.task_states(run_id).values() if s.status != "pending")
    update_progress_artifact(artifact_id=progress_id, progress=100.0 * finished / max(total, 1))


@flow(name="process-batch", task_runner=ThreadPoolTaskRunner(max_workers=DEFAULT_MAX_WORKERS), persist_result=False)
def process_batch(
    spec: BatchSpec | str,
    providers: str | None = None,
    strategy: str | None = None,
    max_cost_usd: float | None = None,
    mode: Mode = "auto",
    fresh: bool = False,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Run a batch spec (a path or an inline spec) through the routing step; returns the run's totals.

    `max_cost_usd` caps this run's spend (overriding the providers file's `budget.max_cost_usd_per_run`).
    """
    batch, config, chosen = resolve_inputs(spec, providers, strategy)
    if max_cost_usd is not None:
        config = config.model_copy(
            update={
                "budget": Budget(
                    max_cost_usd_per_run=max_cost_usd, max_cost_usd_per_day=config.budget.max_cost_usd_per_day
                )
            }
        )
    ledger = default_ledger()
    resumed = run_id is not None
    if run_id is None:
        run_id, resumed = start_run(ledger, batch, chosen, fresh=fresh)
    ledger.set_flow_run_id(run_id, flow_run.get_id())
    chunked = choose_chunked(mode, len(batch.tasks), config)
    logger = get_run_logger()
    logger.info(
        "run %s (%s) of batch %r: %d tasks, %s mode",
        run_id,
        "resumed" if resumed else "new",
        batch.name,
        len(batch.tasks),
        "chunked" if chunked else "per-node",
    )
    progress_id = create_progress_artifact(
        progress=0.0, key=f"switchboard-progress-{run_id.lower()}", description=f"Switchboard run {run_id}"
    )
    open_runtime(batch, config, chosen, run_id=run_id, resumed=resumed, ledger=ledger, observer=_observer(ledger))
    try:
        if chunked:
            _run_chunked(batch, run_id, progress_id)
        else:
            _run_per_node(batch, run_id, ledger, progress_id)
    finally:
        close_runtime(run_id)
    update_progress_artifact(artifact_id=progress_id, progress=100.0)
    return finish_run(ledger, run_id)


def choose_chunked(mode: Mode, size: int, config: SwitchboardConfig) -> bool:
    return mode == "chunked" or (mode == "auto" and size > config.runner.chunk_threshold)


def _run_per_node(batch: BatchSpec, run_id: str, ledger: Ledger, progress_id: str | None) -> None:
    futures: dict[str, PrefectFuture[str | None]] = {}
    for layer in batch.layers():
        for t in layer:
            upstream = [allow_failure(futures[d]) for d in t.depends_on]
            futures[t.id] = execute_node.submit(run_id, t.id, wait_for=upstream)
    total, step = len(futures), max(1, len(futures) // 20)
    for done, _ in enumerate(as_completed(list(futures.values())), start=1):
        if done % step == 0 or done == total:
            _progress(ledger, run_id, total, progress_id)


def _run_chunked(batch: BatchSpec, run_id: str, progress_id: str | None) -> None:
    for level, layer in enumerate(batch.layers()):
        ids = [t.id for t in layer]
        execute_level.submit(run_id, level, len(ids), ids, progress_id).wait()


def _observer(ledger: Ledger) -> Any:
    """Routing events go to the ledger and, where flows.events is available, to Prefect's event bus."""
    try:
        from flows.events import PrefectEventForwarder
    except ImportError:
        return None
    return PrefectEventForwarder(ledger)


def finish_run(ledger: Ledger, run_id: str) -> dict[str, Any]:
    """Mark the run completed or failed from its tasks, publish its artifacts and return the totals."""
    states = ledger.task_states(run_id)
    all_done = all(s.status == "completed" for s in states.values())
    ledger.finish_run(run_id, "completed" if all_done else "failed")
    summary = run_summary(ledger, run_id)
    publish_run_table(summary)
    create_markdown_artifact(
        markdown=failover_markdown(summary),
        key=f"switchboard-failovers-{run_id.lower()}",
        description=f"Switchboard run {run_id}: failovers and their reasons",
    )
    return {"run_id": run_id, "status": summary["run"]["status"], "totals": summary["totals"]}


def batch_flow(config: SwitchboardConfig) -> Any:
    """`process_batch` with the task runner chosen in the providers file."""
    try:
        from flows.task_runners import make_task_runner
    except ImportError:
        return process_batch.with_options(task_runner=ThreadPoolTaskRunner(max_workers=config.runner.max_workers))
    return process_batch.with_options(task_runner=make_task_runner(config.runner))


__all__ = ["batch_flow", "choose_chunked", "finish_run", "process_batch"]
