"""`/api/v1/tasks`: route one task now (the single-call path) or, with a `deadline`, in the background (where it
may wait in a vendor batch API), read a task and its routing decision.

A task's id is `<run id>:<task id>`, split at the first colon: tasks routed here live in the run of their UTC
day (`api-20261206:t101530-1a2b3c4d`), a batch's tasks in their run (`r20261206-101500-ab12cd:review-1`).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request, Response

from api.errors import unprocessable
from api.models import ProviderPreference, TaskOut, TaskProvider, TaskRequest, errors
from api.security import Admin, Reader
from api.state import ApiState, api_state
from batches import AttemptSummary, TaskIdTaken, TaskSummary, new_task_id, task_summary
from ledger import TaskPreference, TaskStatus, set_task_preference, task_preferences
from providers import AITask

router = APIRouter(prefix="/tasks", tags=["tasks"])
TaskRef = Annotated[str, Path(min_length=3, max_length=300, description="`<run id>:<task id>`")]


def split_task_ref(ref: str) -> tuple[str, str]:
    run_id, sep, task_id = ref.partition(":")
    if not sep or not run_id or not task_id:
        raise HTTPException(404, f"task id {ref!r} is not `<run id>:<task id>`")
    return run_id, task_id


def _preference(pref: TaskPreference | None) -> dict[str, str | None] | None:
    if pref is None:
        return None
    return {"provider": pref.provider, "model": pref.model, "set_by": pref.set_by, "set_at": pref.set_at.isoformat()}


def _task_out(run_id: str, summary: TaskSummary, pref: TaskPreference | None = None) -> TaskOut:
    decision = summary.decision.document() if summary.decision is not None else None
    return TaskOut(
        id=f"{run_id}:{summary.id}",
        run_id=run_id,
        task_id=summary.id,
        type=summary.type,
        status=str(summary.status),
        provider=summary.provider,
        output=summary.output,
        error=summary.error,
        attempts=summary.attempts,
        cost_usd=summary.cost_usd,
        latency_ms=summary.latency_ms,
        decision=decision,
        preference=_preference(pref),
        vendor_batch=summary.vendor_batch,
    )


async def _read(state: ApiState, ref: str) -> tuple[str, TaskSummary, TaskPreference | None]:
    run_id, task_id = split_task_ref(ref)
    summary = await asyncio.to_thread(task_summary, state.ledger, run_id, task_id)
    if summary is None:
        raise HTTPException(404, f"no task {task_id!r} in run {run_id!r}")
    prefs = await asyncio.to_thread(task_preferences, state.ledger, run_id, [task_id])
    return run_id, summary, prefs.get(task_id)


_ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {
        "model": TaskOut,
        "description": "a task with a `deadline`: registered (`status` pending) and routed in the background",
        "headers": {"Location": {"description": "where to read the task", "schema": {"type": "string"}}},
    }
}


@router.post("", responses={**_ACCEPTED, **errors(409, 413, 422)}, response_model=TaskOut, summary="Route one task now")
async def route_task(request: Request, response: Response, body: TaskRequest, _: Admin) -> TaskOut:
    """Routes the task through the same router, limits and ledger as batches and answers once its attempts are
    committed. A task that no provider completed is still a 200: its `status` and `error` say why.

    With a `deadline` the answer is a 202 at once, with the task `pending` and a `Location` to read it at: it
    routes in the background, where it may wait in a vendor batch API (providers with `batch: {enabled: true}`;
    `vendor_batch` in the task says which) and goes live shortly before its deadline; with no such provider it
    routes live. A task waiting in a vendor batch when the server stops stays `pending` and the next start routes
    it again, polling that vendor batch; one not submitted yet is recorded `cancelled`."""
    state = api_state(request)
    metadata = {k: v for k, v in (("strategy", body.strategy), ("provider", body.provider), ("model", body.model)) if v}
    task = AITask(
        id=body.id or new_task_id(),
        type=body.type,
        prompt=body.prompt,
        priority=body.priority,
        max_attempts=body.max_attempts,
        max_output_tokens=body.max_output_tokens,
        affinity=body.affinity,
        team=body.team,
        cache=body.cache,
        metadata=metadata,
    )
    deadline_s = body.deadline_s
    if deadline_s is not None:
        return await _start(request, response, state, task, deadline_s)
    try:
        done = await state.engine.route(task)
    except TaskIdTaken as exc:
        raise HTTPException(409, str(exc)) from None
    # Answered from what was routed and committed, as GET /tasks/{id} reads it back (no second trip to the ledger).
    routed = done.routed
    attempts = [AttemptSummary.of(a) for a in routed.attempts]
    latency = (
        (max(a.finished_at for a in routed.attempts) - min(a.started_at for a in routed.attempts)).total_seconds()
        * 1000
        if routed.attempts
        else 0.0
    )
    decision = routed.decision
    return TaskOut(
        id=done.id,
        run_id=done.run_id,
        task_id=done.task_id,
        type=task.type,
        status=str(routed.status),
        provider=routed.provider_id if routed.status == TaskStatus.COMPLETED else None,
        output=routed.response.text if routed.response else None,
        error=routed.error,
        attempts=attempts,
        cost_usd=routed.cost_usd,
        latency_ms=round(latency, 3),
        decision=decision.document() if decision is not None else None,
    )


async def _start(request: Request, response: Response, state: ApiState, task: AITask, deadline_s: float) -> TaskOut:
    try:
        run_id, task_id = await state.engine.start(task, deadline_s)
    except TaskIdTaken as exc:
        raise HTTPException(409, str(exc)) from None
    ref = f"{run_id}:{task_id}"
    response.status_code = 202
    response.headers["Location"] = request.app.url_path_for("get_task", task_ref=ref)
    return TaskOut(id=ref, run_id=run_id, task_id=task_id, type=task.type, status=str(TaskStatus.PENDING))


@router.get(
    "/{task_ref}",
    responses=errors(404, 422),
    response_model=TaskOut,
    summary="A task, its answer, attempts and decision",
)
async def get_task(request: Request, task_ref: TaskRef, _: Reader) -> TaskOut:
    run_id, summary, pref = await _read(api_state(request), task_ref)
    return _task_out(run_id, summary, pref)


@router.get(
    "/{task_ref}/provider",
    responses=errors(404, 422),
    response_model=TaskProvider,
    summary="The task's routing decision",
)
async def get_task_provider(request: Request, task_ref: TaskRef, _: Reader) -> TaskProvider:
    run_id, summary, pref = await _read(api_state(request), task_ref)
    return _task_provider(run_id, summary, pref)


def _task_provider(run_id: str, summary: TaskSummary, pref: TaskPreference | None) -> TaskProvider:
    return TaskProvider(
        id=f"{run_id}:{summary.id}",
        status=str(summary.status),
        provider=summary.provider,
        decision=summary.decision.document() if summary.decision is not None else None,
        preference=_preference(pref),
    )


@router.put(
    "/{task_ref}/provider",
    responses=errors(404, 409, 413, 422),
    response_model=TaskProvider,
    summary="Prefer a provider for a task not run yet",
)
async def put_task_provider(request: Request, task_ref: TaskRef, body: ProviderPreference, who: Admin) -> TaskProvider:
    """The task (of a batch, also one already running) is tried on that provider (or one serving that model)
    first when it runs, if it can take the task then; 409 once the task has run."""
    if body.provider is None and body.model is None:
        raise unprocessable("give a provider, a model or both", "body")
    state = api_state(request)
    run_id, summary, _ = await _read(state, task_ref)
    if summary.status != TaskStatus.PENDING:
        raise HTTPException(409, f"task {summary.id!r} of run {run_id!r} has run already ({summary.status})")
    await asyncio.to_thread(
        set_task_preference, state.ledger, run_id, summary.id, provider=body.provider, model=body.model, who=who.name
    )
    run_id, summary, pref = await _read(state, task_ref)
    return _task_provider(run_id, summary, pref)


__all__ = ["router", "split_task_ref"]
