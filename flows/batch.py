"""The `process_batch` Prefect flow.

Two shapes, chosen by size (`runner.chunk_threshold`, overridable with `mode`):
- per_node: one Prefect task per batch task, submitted with `wait_for` its dependencies; each node is visible
  in the Prefect UI;
- chunked: one Prefect task per chunk of consecutive DAG levels (about `runner.chunk_size` tasks); inside it
  the routing engine runs the chunk's tasks concurrently, each as soon as its dependencies finish, so a
  1,000-task batch does not pay Prefect's per-task cost 1,000 times. Every item is still a row in the ledger
  and in the run's table artifact.

The flow is sync on purpose: measured here, an async flow's task hand-offs were 2-4x slower (a 50-task no-op
DAG took 2.2-4.8 s as an async flow and 1.1 s as a sync one). The up to 1 s a sync flow spends joining
Prefect's heartbeat thread on exit (PREFECT.md) is avoided for runs started in this process by sending the
heartbeat ourselves (flows/heartbeat.py).
"""

from __future__ import annotations

import gc
from contextlib import AbstractContextManager, nullcontext
from functools import cache
from typing import Any, Literal
from uuid import UUID

from prefect import allow_failure, flow, get_client, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.context import FlowRunContext
from prefect.futures import PrefectFuture, wait
from prefect.runtime import flow_run
from prefect.states import Cancelled, Completed, Crashed, Failed, State
from prefect.task_runners import ThreadPoolTaskRunner
from sqlalchemy.exc import SQLAlchemyError

from batches import (
    BatchRuntime,
    BatchSpec,
    NodeResult,
    RuntimeRef,
    RunTotals,
    StopReason,
    StopRequest,
    check_same_spec,
    claim_renewed,
    close_runtime,
    end_run,
    end_stopped_run,
    forget_stop,
    open_runtime,
    resolve_inputs,
    run_node,
    run_nodes,
    run_stop,
    run_summary,
    runtime_for,
    start_run,
)
from flows.artifacts import failover_markdown, publish_run_table, side_by_side
from flows.cancelling import CANCEL_DETAIL, flow_run_cancelling, sigterm_cancels, stop_when_cancelled
from flows.events import PrefectEventForwarder
from flows.heartbeat import flow_heartbeat, in_process_heartbeat
from flows.secrets import secret_resolver
from flows.task_runners import make_task_runner
from ledger import Ledger, LedgerLost, TaskStatus, open_ledger
from routing import Budget, StrategyName, SwitchboardConfig

DEFAULT_MAX_WORKERS = 16
PROGRESS_EVERY_S = 1.0
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


class RunHandle:
    """A run's RuntimeRef as a Prefect task parameter that Prefect does not look inside.

    Prefect walks every parameter that is a collection, dataclass or pydantic model (looking for futures to
    resolve and inputs to record), several times per task run. Walking a RuntimeRef walks the whole spec:
    measured 2.5 ms a walk for a 50-task spec and 8 ms for 200, paid again by every node of a per-node run.
    A plain object is passed through as it is, and pickles for Dask workers.
    """

    __slots__ = ("ref",)

    def __init__(self, ref: RuntimeRef) -> None:
        self.ref = ref


@task(name="route-task", task_run_name="{task_id}", **_TASK_OPTIONS)
def execute_node(handle: RunHandle, task_id: str) -> str | State | None:
    runtime = _runtime(handle)
    with _cancel_watch_away_from_the_flow(runtime):
        result: NodeResult = run_node(runtime, task_id)
    _tell(result)
    if result.status == TaskStatus.CANCELLED:  # the run was interrupted or cancelled: shown as such in the UI
        return Cancelled(message=result.error)
    if result.status == TaskStatus.FAILED:
        raise NodeFailed(f"{task_id}: {result.error}")
    if result.status == TaskStatus.SKIPPED:  # never sent to a provider: say so in the UI rather than "Completed"
        return Completed(name="Skipped", message=result.error)
    return result.output


@task(name="route-chunk", task_run_name="chunk-{chunk} ({size} tasks)", **_TASK_OPTIONS)
def execute_chunk(
    handle: RunHandle, chunk: int, size: int, task_ids: list[str], progress_id: str | None
) -> dict[str, int]:
    runtime = _runtime(handle)
    run_id = handle.ref.run_id
    counts: dict[str, int] = {}
    with _cancel_watch_away_from_the_flow(runtime):
        results = run_nodes(runtime, task_ids, on_progress=lambda: _progress(runtime.ledger, run_id, progress_id))
    for result in results:
        counts[result.status] = counts.get(result.status, 0) + 1
        _tell(result)
    return counts


def _cancel_watch_away_from_the_flow(runtime: BatchRuntime) -> AbstractContextManager[None]:
    """In a process the flow body does not run in (a Dask worker), the nodes watch the flow run's state
    themselves: the flow's own watch stops only the work of its process."""
    if runtime.memory is not None:  # the flow's process: its body watches already
        return nullcontext()
    return stop_when_cancelled(runtime.run.run_id, flow_run.get_id())


def _tell(result: NodeResult) -> None:
    """The task's routing outcome to the run's log at INFO: it reaches the Prefect server (the flow run's Logs tab)
    while `switchboard run` keeps Prefect's console handler at WARNING."""
    if result.story is not None:
        get_run_logger().info("%s", result.story)


def _runtime(handle: RunHandle) -> BatchRuntime:
    """The run's runtime; in a process the flow did not start in (a Dask worker) it is built here, with keys
    from env vars, else Prefect Secret blocks (the resolver is made inside the task run, where it is used)."""
    return runtime_for(handle.ref, secrets=secret_resolver)


def _progress(ledger: Ledger, run_id: str, progress_id: str | None) -> None:
    """Update the run's progress artifact (from the flow or from a chunk's task)."""
    if progress_id is not None:
        try:
            percent = _percent_finished(ledger, run_id)
        except SQLAlchemyError:  # the ledger is busy or away: progress is only a display, the run goes on
            return
        update_progress_artifact(artifact_id=progress_id, progress=percent)


def _percent_finished(ledger: Ledger, run_id: str) -> float:
    counts = ledger.task_status_counts(run_id)
    finished = sum(n for status, n in counts.items() if status != TaskStatus.PENDING)
    return 100.0 * finished / max(sum(counts.values()), 1)


@flow(name="process-batch", task_runner=ThreadPoolTaskRunner(max_workers=DEFAULT_MAX_WORKERS), persist_result=False)
def process_batch(
    spec: BatchSpec | str,
    providers: str | None = None,
    strategy: StrategyName | None = None,
    max_cost_usd: float | None = None,
    mode: Mode = "auto",
    fresh: bool = False,
    run_id: str | None = None,
) -> dict[str, Any] | State:
    """Run a batch spec (a path or an inline spec) through the routing step; returns the run's totals.

    `max_cost_usd` caps this run's spend (overriding the providers file's `budget.max_cost_usd_per_run`).
    `run_id` is for the caller that started the run itself (`switchboard run`); leave it empty. The flow run
    ends Failed (with the totals as its data) when a task did not complete.
    """
    freeze_startup_heap()
    batch, config, chosen = resolve_inputs(spec, providers, strategy)
    wanted_runner = make_task_runner(config.runner)
    if FlowRunContext.get().task_runner != wanted_runner:  # type: ignore[union-attr]
        # Started with the decorator's runner (a deployment run on a worker) while the providers file asks for
        # another (more threads, Dask): run the batch as a subflow that has it.
        subflow = process_batch.with_options(task_runner=wanted_runner)
        inner = subflow(spec, providers, strategy, max_cost_usd, mode, fresh, run_id, return_state=True)
        result = inner.result(raise_on_failure=False)
        if isinstance(result, BaseException):
            raise result
        return result if inner.is_completed() else Failed(message=inner.message, data=result)
    if max_cost_usd is not None:
        config = config.model_copy(
            update={
                "budget": Budget(
                    max_cost_usd_per_run=max_cost_usd, max_cost_usd_per_day=config.budget.max_cost_usd_per_day
                )
            }
        )
    ledger = open_ledger()
    resumed: bool | None = None  # None: the caller (the CLI) started or resumed the run and says so itself
    if run_id is None:
        run_id, resumed = start_run(ledger, batch, chosen, fresh=fresh)
    else:
        check_same_spec(ledger, run_id, batch)
    mark_abandoned_flow_run(ledger, run_id)
    ledger.set_flow_run_id(run_id, flow_run.get_id())
    chunked = choose_chunked(mode, len(batch.tasks), config)
    logger = get_run_logger()
    logger.info(
        "run %s%s of batch %r: %d tasks, %s mode",
        run_id,
        {True: " (resumed)", False: " (new)", None: ""}[resumed],
        batch.name,
        len(batch.tasks),
        "chunked" if chunked else "per-node",
    )
    progress_id = create_progress_artifact(
        progress=0.0, key=f"switchboard-progress-{run_id.lower()}", description=f"Switchboard run {run_id}"
    )
    # Keys come from env vars, else Prefect Secret blocks of the same name (inside a flow run or with a server).
    runtime = open_runtime(
        batch, config, chosen, run_id=run_id, ledger=ledger, observer=_observer(ledger), secrets=secret_resolver()
    )
    handle = RunHandle(RuntimeRef.of(runtime))
    writer = runtime.writer
    forget_stop(run_id)  # a resumed run starts with no stop left from before in this process
    this_flow_run = flow_run.get_id()
    try:
        with (
            flow_heartbeat(),
            claim_renewed(ledger, run_id),
            stop_when_cancelled(run_id, this_flow_run),
            sigterm_cancels(run_id, this_flow_run),
        ):
            if chunked:
                _run_chunked(batch, handle, progress_id, config.runner.chunk_size)
            else:
                _run_per_node(batch, handle, ledger, progress_id)
    finally:
        close_runtime(run_id)  # the ledger writer flushed: every attempt, cancelled ones too, is committed
    stop = run_stop(run_id)
    if stop.request_made is None and cancelled_elsewhere(ledger, run_id, this_flow_run):
        stop.request(StopReason.CANCELLED, CANCEL_DETAIL)
    request = stop.request_made
    forget_stop(run_id)
    if request is not None and request.reason == StopReason.CANCELLED:
        return finish_cancelled_run(ledger, run_id, request, progress_id)
    if request is not None and writer.unreachable is not None:
        return finish_lost_run(ledger, run_id, request, writer.unreachable, progress_id)
    return finish_run(ledger, run_id, progress_id)


def cancelled_elsewhere(ledger: Ledger, run_id: str, flow_run_id: UUID | str) -> bool:
    """The cancel was seen by the run's nodes in another process (a Dask worker) before this one saw it: some
    tasks ended cancelled and the flow run is Cancelling. Ending the run `failed` would then leave the flow run
    Cancelling (Prefect refuses any other final state) and the ledger disagreeing with it."""
    return bool(ledger.task_status_counts(run_id).get(TaskStatus.CANCELLED)) and flow_run_cancelling(flow_run_id)


@cache
def freeze_startup_heap() -> None:
    """Once per process, before its first batch: take everything alive by then (imported modules, Prefect's,
    pydantic's and SQLAlchemy's machinery: some 200,000 objects) out of the cyclic garbage collector's sight.
    Otherwise each full collection walks them all, 140-300 ms per 1,000-task run measured, in the middle of
    routing. Objects made later are collected as usual."""
    gc.freeze()


def choose_chunked(mode: Mode, size: int, config: SwitchboardConfig) -> bool:
    return mode == "chunked" or (mode == "auto" and size > config.runner.chunk_threshold)


def _run_per_node(batch: BatchSpec, handle: RunHandle, ledger: Ledger, progress_id: str | None) -> None:
    futures: dict[str, PrefectFuture[str | None]] = {}
    for layer in batch.layers():
        for t in layer:
            upstream = [allow_failure(futures[d]) for d in t.depends_on]
            futures[t.id] = execute_node.submit(handle, t.id, wait_for=upstream)
    pending = list(futures.values())
    while pending:
        _, not_done = wait(pending, timeout=PROGRESS_EVERY_S)
        pending = list(not_done)
        if pending:  # the end (100%) is published with the run's other artifacts
            _progress(ledger, handle.ref.run_id, progress_id)


def _run_chunked(batch: BatchSpec, handle: RunHandle, progress_id: str | None, chunk_size: int) -> None:
    stop = run_stop(handle.ref.run_id)
    for number, ids in enumerate(chunks(batch, chunk_size)):
        if stop.request_made is not None:  # the later chunks' tasks are marked cancelled when the run ends
            return
        execute_chunk.submit(handle, number, len(ids), ids, progress_id).wait()


def chunks(batch: BatchSpec, chunk_size: int) -> list[list[str]]:
    """Consecutive DAG levels grouped into chunks of at least `chunk_size` tasks (the last may be smaller)."""
    groups: list[list[str]] = [[]]
    for layer in batch.layers():
        if len(groups[-1]) >= chunk_size:
            groups.append([])
        groups[-1].extend(t.id for t in layer)
    return groups


def _observer(ledger: Ledger) -> PrefectEventForwarder:
    """Routing events go to the ledger and to Prefect's event bus."""
    return PrefectEventForwarder(ledger)


def finish_cancelled_run(ledger: Ledger, run_id: str, request: StopRequest, progress_id: str | None = None) -> State:
    """The run's flow run was cancelled: mark what did not finish cancelled, the run cancelled, publish the
    artifacts and end the flow run Cancelled, its data the totals."""
    end_stopped_run(ledger, run_id, request)
    result = _publish(ledger, run_id, progress_id)
    message = (
        f"{request.detail} (seen at {request.at.isoformat()}); "
        f"Switchboard run {run_id} is resumed by running its spec again"
    )
    return Cancelled(message=message, data=result)


def finish_lost_run(
    ledger: Ledger, run_id: str, request: StopRequest, lost: Exception, progress_id: str | None = None
) -> State:
    """The ledger went away mid-run, which stopped it: end it `interrupted` if the ledger is back. Either way the
    flow run ends Failed saying why (not by raising: that would print a traceback for a known condition); the run
    is resumed by the next run of its spec, after the spool is written back."""
    message = f"{request.detail}; Switchboard run {run_id} is resumed by running its spec again"
    try:
        end_stopped_run(ledger, run_id, request)
        result = _publish(ledger, run_id, progress_id)
    except SQLAlchemyError as exc:
        gone = LedgerLost(ledger.url, f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}")
        return Failed(message=f"{gone}; {message}", data={"run_id": run_id, "status": "interrupted"})
    return Failed(message=message, data=result)


def finish_run(ledger: Ledger, run_id: str, progress_id: str | None = None) -> dict[str, Any] | State:
    """Mark the run completed or failed from its tasks, publish its artifacts and return the totals."""
    all_done = end_run(ledger, run_id)
    result = _publish(ledger, run_id, progress_id)
    if all_done:
        return result
    totals = RunTotals.model_validate(result["totals"])
    unfinished = (TaskStatus.FAILED, TaskStatus.SKIPPED, TaskStatus.CANCELLED, TaskStatus.PENDING)
    not_done = ", ".join(f"{totals.count(s)} {s}" for s in unfinished if totals.count(s))
    tasks = sum(totals.count(s) for s in TaskStatus)
    return Failed(message=f"{not_done} of {tasks} tasks (run {run_id})", data=result)


def _publish(ledger: Ledger, run_id: str, progress_id: str | None) -> dict[str, Any]:
    """Publish the run's artifacts (progress at 100%, its table, its failovers); the flow run's result."""
    # Three round trips to the Prefect server, side by side and beside reading the run's summary.
    with side_by_side() as publish:
        if progress_id is not None:
            publish(lambda: update_progress_artifact(artifact_id=progress_id, progress=100.0))
        summary = run_summary(ledger, run_id)
        publish(lambda: publish_run_table(summary))
        publish(
            lambda: create_markdown_artifact(
                markdown=failover_markdown(summary),
                key=f"switchboard-failovers-{run_id.lower()}",
                description=f"Switchboard run {run_id}: failovers and their reasons",
            )
        )
    return {"run_id": run_id, "status": summary.run.status.value, "totals": summary.totals.model_dump()}


def mark_abandoned_flow_run(ledger: Ledger, run_id: str) -> None:
    """A resumed run's previous flow run, if Prefect still thinks it runs (its process was killed), is Crashed."""
    run = ledger.get_run(run_id)
    previous = run.flow_run_id if run is not None else None
    if not previous or previous == str(flow_run.get_id()):
        return
    try:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(UUID(previous)).state
            if state is not None and not state.is_final():
                message = f"abandoned: Switchboard run {run_id} was resumed by flow run {flow_run.get_id()}"
                client.set_flow_run_state(UUID(previous), Crashed(message=message), force=True)
    except Exception:  # only the UI's bookkeeping: never fail the resumed run over it
        get_run_logger().warning("could not mark the abandoned flow run %s crashed", previous, exc_info=True)


def batch_flow(config: SwitchboardConfig) -> Any:
    """`process_batch` with the task runner chosen in the providers file."""
    return process_batch.with_options(task_runner=make_task_runner(config.runner))


def run_batch_flow(config: SwitchboardConfig, **parameters: Any) -> dict[str, Any]:
    """Run the flow in this process with the providers file's task runner; returns the run's totals (also when
    the flow run ended Failed because a task did not complete), raises what crashed it."""
    with in_process_heartbeat():
        state = batch_flow(config)(**parameters, return_state=True)
    result = state.result(raise_on_failure=False)
    if isinstance(result, BaseException):
        raise result
    return result


__all__ = [
    "batch_flow",
    "choose_chunked",
    "chunks",
    "finish_cancelled_run",
    "finish_run",
    "process_batch",
    "run_batch_flow",
]
