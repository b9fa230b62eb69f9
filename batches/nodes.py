"""What DAG nodes do, Prefect aside: reuse a recorded success, skip after a failed upstream, else route.

One Prefect task may run one node (small DAGs, for per-node visibility in the UI) or a whole chunk of the
DAG (large DAGs). Both go through `run_nodes`: it takes what is known of the run (kept in memory by the
flow's own process, else read from the ledger), runs the nodes on the engine loop, each starting as soon as
its upstream tasks finish (no waiting for a whole level), and hands results to the group-committing ledger
writer.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import Callable, Sequence

from sqlalchemy.exc import SQLAlchemyError

from batches.lifecycle import CANCELLED
from batches.overlay import follow_overlay
from batches.run_state import KnownState, NodeResult
from batches.runtime import BatchRuntime
from batches.stopping import run_stop
from batches.story import routing_story
from ledger import TaskOutcome, TaskPreference, TaskStatus, task_preferences
from providers import well_formed
from routing import RoutedResult, engine_loop

# How often a waiting chunk reports progress.
PROGRESS_EVERY_S = 1.0
MAX_SELECTED_IDS = 2000


def run_node(runtime: BatchRuntime, task_id: str) -> NodeResult:
    return run_nodes(runtime, [task_id])[0]


def run_nodes(
    runtime: BatchRuntime, task_ids: Sequence[str], on_progress: Callable[[], None] | None = None
) -> list[NodeResult]:
    """Run the given nodes, whose upstream tasks outside `task_ids` have finished; results in the order given."""
    ledger, run_id = runtime.ledger, runtime.run.run_id
    with contextlib.suppress(SQLAlchemyError):  # the ledger busy or away: route with the providers known
        changed = follow_overlay(runtime.follower, runtime.router)  # providers the API changed since the last nodes
        if changed is not None:
            runtime.config = changed
    known = runtime.memory if runtime.memory is not None else _read_known(runtime, task_ids)
    results = known.results
    stop = run_stop(run_id)
    # Provider preferences set through the API (PUT /tasks/{id}/provider), read again while the nodes run so a
    # preference set now still decides a task that has not started.
    preferences: dict[str, TaskPreference] = {}
    with contextlib.suppress(SQLAlchemyError):  # the ledger busy or away: the spec's own preferences only
        preferences = task_preferences(ledger, run_id, task_ids)
    try:
        if stop.request_made is not None:  # stopped: no provider call starts
            raise concurrent.futures.CancelledError
        future = engine_loop().submit(_run_dag(runtime, list(task_ids), known, preferences))
        while True:
            try:
                future.result(timeout=PROGRESS_EVERY_S)
                break
            except concurrent.futures.TimeoutError:
                with contextlib.suppress(SQLAlchemyError):  # the ledger busy or away: keep the last known ones
                    preferences.update(task_preferences(ledger, run_id, task_ids))
                if on_progress:
                    on_progress()
    except concurrent.futures.CancelledError:
        pass  # interrupted or cancelled: what finished is in `results`, the rest is marked cancelled below
    missing = [t for t in task_ids if t not in results]
    request = stop.request_made
    error = request.task_error if request is not None else CANCELLED
    for task_id in missing:
        results[task_id] = NodeResult(task_id, TaskStatus.CANCELLED, error=error)
    if missing:
        # Through the writer: if the ledger went away (which may be why the run stopped) they are spooled.
        marked = [
            runtime.writer.submit_outcome(run_id, TaskOutcome(task_id=t, status=TaskStatus.CANCELLED, error=error))
            for t in missing
        ]
        for done in marked:
            if isinstance(done, concurrent.futures.Future):  # always: no event loop runs on this thread
                done.result()
    if on_progress:
        on_progress()
    return [results[t] for t in task_ids]


def _read_known(runtime: BatchRuntime, task_ids: Sequence[str]) -> KnownState:
    # Only these nodes and their upstream tasks: a handful of rows per node, not the whole run (with every
    # output). Past a few thousand ids one scan of the run is cheaper than a long IN list (and stays under the
    # databases' bound-parameter limits).
    wanted = set(task_ids).union(*(runtime.spec.task(t).depends_on for t in task_ids))
    return KnownState.read(runtime.ledger, runtime.run.run_id, wanted if len(wanted) <= MAX_SELECTED_IDS else None)


async def _run_dag(
    runtime: BatchRuntime, task_ids: list[str], known: KnownState, preferences: dict[str, TaskPreference]
) -> None:
    this = asyncio.current_task()
    assert this is not None
    with run_stop(runtime.run.run_id).guarding(this):  # a stop of the run cancels this, with its calls
        await _run_dag_nodes(runtime, task_ids, known, preferences)


async def _run_dag_nodes(
    runtime: BatchRuntime, task_ids: list[str], known: KnownState, preferences: dict[str, TaskPreference]
) -> None:
    finished = {task_id: asyncio.Event() for task_id in task_ids}
    writes: list[concurrent.futures.Future[None]] = []

    async def node(task_id: str) -> None:
        for dep in runtime.spec.task(task_id).depends_on:
            if dep in finished:
                await finished[dep].wait()
        result, outcome, routed = await _run_one(runtime, task_id, known, preferences.get(task_id))
        # An answer is durable before anyone uses it: dependents start only once the attempt rows are
        # committed (or spooled, see ledger.writer). On SQLite the commit runs on the next turn of this loop
        # and shares its transaction with every answer that arrived meanwhile, so this costs no round trip.
        # The writer commits in submission order, so the outcome lands with its attempts or after them.
        try:
            if routed is not None:
                await routed.committed()
        finally:
            known.results[task_id] = result
            if routed is not None and routed.attempts:
                known.last_attempts[task_id] = routed.attempts[-1].attempt
            finished[task_id].set()
        if outcome is not None:
            writes.append(runtime.writer.submit_outcome(runtime.run.run_id, outcome))

    await asyncio.gather(*(node(t) for t in task_ids))
    for done in writes:  # task states are durable before the chunk reports back
        await asyncio.wrap_future(done)


async def _run_one(
    runtime: BatchRuntime, task_id: str, known: KnownState, preference: TaskPreference | None = None
) -> tuple[NodeResult, TaskOutcome | None, RoutedResult | None]:
    earlier = known.results.get(task_id)
    if earlier is not None and earlier.status == TaskStatus.COMPLETED:
        # Finished in this process already (Prefect retried its task after the node was done).
        return (
            NodeResult(task_id, TaskStatus.COMPLETED, output=earlier.output, reused=True, provider=earlier.provider),
            None,
            None,
        )
    state = known.states.get(task_id)
    if state is not None and state.status == TaskStatus.COMPLETED:
        # The ledger is the source of truth: a recorded success is never executed (or charged) again.
        done = NodeResult(task_id, TaskStatus.COMPLETED, output=state.output, reused=True, provider=state.provider_id)
        return done, None, None
    if task_id in known.successes:
        # Its successful attempt was committed but the process died before the task was marked done.
        provider_id, output = known.successes[task_id]
        outcome = TaskOutcome(task_id=task_id, status=TaskStatus.COMPLETED, provider_id=provider_id, output=output)
        return (
            NodeResult(task_id, TaskStatus.COMPLETED, output=output, reused=True, provider=provider_id),
            outcome,
            None,
        )

    task_spec = runtime.spec.task(task_id)
    upstream = {dep: known.upstream(dep) for dep in task_spec.depends_on}
    blocked = {dep: status for dep, (status, _) in upstream.items() if status != TaskStatus.COMPLETED}
    if blocked:
        error = "skipped: upstream not completed (" + ", ".join(f"{d} {s}" for d, s in blocked.items()) + ")"
        skipped = TaskOutcome(task_id=task_id, status=TaskStatus.SKIPPED, error=error)
        return NodeResult(task_id, TaskStatus.SKIPPED, error=error), skipped, None

    # Lone surrogates (half an emoji) become U+FFFD: the next provider gets text it can encode.
    context = {dep: well_formed(output or "") for dep, (_, output) in upstream.items()}
    task = runtime.spec.to_ai_task(task_spec, context)
    if preference is not None:  # set through the API: it replaces the spec's own preference
        wanted = {"provider": preference.provider, "model": preference.model}
        metadata = {k: v for k, v in {**task.metadata, **wanted}.items() if v is not None}
        task = task.model_copy(update={"metadata": metadata})
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
    story = routing_story(
        task_id, str(routed.status), routed.provider_id, routed.attempts, routed.decision, routed.error
    )
    result = NodeResult(
        task_id, routed.status, output=output, error=routed.error, story=story, provider=routed.provider_id
    )
    return result, outcome, routed


__all__ = ["run_node", "run_nodes"]
