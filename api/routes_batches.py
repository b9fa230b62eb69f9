"""`/api/v1/batches`: start a batch from a spec (JSON, or YAML with a YAML content type), list runs, read one, and
cancel one the way the Prefect UI does.

A batch runs through the `process-batch` deployment when the Prefect server (PREFECT_API_URL) has it, so a worker
runs it; otherwise as a Prefect flow run of the API's own, in a thread of this server (the same `run_batch` as
Python's). Either way it is an ordinary run: in the ledger, in the Prefect UI, and counted against the shared
limits like any other.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from typing import Annotated, Any, Literal

import yaml
from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel

from api.errors import unprocessable
from api.feed import prefect_ui
from api.models import errors
from api.security import Admin, Reader
from api.state import ApiState, api_state
from batches import API_RUN_PREFIX, BatchSpec, run_summary
from flows import (
    DEFAULT_DEPLOYMENT,
    CancelFailed,
    DeploymentNotFound,
    cancel_run,
    run_batch,
    submit_batch,
    validate_spec,
)
from ledger import RunRecord
from providers import utc_now
from routing import BUILTIN_SOURCE, InputError

router = APIRouter(prefix="/batches", tags=["batches"])
log = logging.getLogger(__name__)
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
# How long POST /batches waits for a flow run of its own to register its run in the ledger.
RUN_ID_WAIT_S = 60.0


class BatchStarted(BaseModel):
    via: Literal["deployment", "api"] = "api"
    run_id: str | None = None  # known at once for a flow run of the API's own; a worker's run registers later
    flow_run_id: str | None = None
    ui_url: str | None = None


class BatchRun(BaseModel):
    id: str
    name: str
    status: str
    started_at: str
    finished_at: str | None = None
    flow_run_id: str | None = None
    ui_url: str | None = None


class CancelAnswer(BaseModel):
    run_id: str
    outcome: Literal["requested", "ended_here", "already_ended"]
    status: str


def _ui(flow_run_id: str | None) -> str | None:
    return f"{prefect_ui()}/runs/flow-run/{flow_run_id}" if flow_run_id else None


def _run(run: RunRecord) -> BatchRun:
    return BatchRun(
        id=run.run_id,
        name=run.batch_name,
        status=str(run.status),
        started_at=run.started_at.isoformat(),
        finished_at=run.finished_at.isoformat() if run.finished_at else None,
        flow_run_id=run.flow_run_id,
        ui_url=_ui(run.flow_run_id),
    )


async def _spec(request: Request) -> BatchSpec:
    raw = await request.body()
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    try:
        doc = yaml.safe_load(raw) if kind in YAML_TYPES else json.loads(raw)
    except (ValueError, yaml.YAMLError) as exc:
        raise unprocessable(
            f"the spec is not valid {'YAML' if kind in YAML_TYPES else 'JSON'}: {exc}", "body"
        ) from None
    if not isinstance(doc, dict):
        raise unprocessable("the spec must be a mapping (name, tasks, ...)", "body")
    try:
        return validate_spec(doc)
    except InputError as exc:
        raise unprocessable(getattr(exc, "problems", [str(exc)]), "body") from None


def _providers_file(state: ApiState) -> str | None:
    source = state.engine.follower.base.source
    return None if source == BUILTIN_SOURCE else source


@router.post(
    "",
    responses=errors(413, 422),
    response_model=BatchStarted,
    status_code=202,
    summary="Start a batch (JSON, or YAML with a YAML content type)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "application/yaml": {"schema": {"type": "string"}},
            },
        }
    },
)
async def start_batch(
    request: Request,
    _: Admin,
    fresh: Annotated[bool, Query(description="always a new run, even of a spec whose last run did not finish")] = False,
) -> BatchStarted:
    state = api_state(request)
    spec = await _spec(request)
    document = spec.model_dump(mode="json")
    providers = _providers_file(state)
    if os.environ.get("PREFECT_API_URL"):
        try:
            flow_run_id = await asyncio.to_thread(
                submit_batch, document, providers, None, fresh=fresh, deployment=DEFAULT_DEPLOYMENT
            )
            return BatchStarted(via="deployment", flow_run_id=flow_run_id, ui_url=_ui(flow_run_id))
        except DeploymentNotFound:
            pass  # no deployment: a flow run of our own
    asked = utc_now()
    thread = threading.Thread(
        target=_run_here, args=(document, providers, fresh), name="switchboard-api-batch", daemon=True
    )
    thread.start()
    run = await asyncio.to_thread(_registered, state, spec, asked, thread)
    if run is None:
        raise HTTPException(503, "the batch's flow run did not start; see the server's log")
    return BatchStarted(via="api", run_id=run.run_id, flow_run_id=run.flow_run_id, ui_url=_ui(run.flow_run_id))


def _run_here(document: dict[str, Any], providers: str | None, fresh: bool) -> None:
    try:
        run_batch(document, providers=providers, fresh=fresh)
    except Exception:  # the run's own record says what happened; the server goes on
        log.exception("a batch started through the API failed")


def _registered(state: ApiState, spec: BatchSpec, asked: Any, thread: threading.Thread) -> RunRecord | None:
    """The run the flow started (or resumed) for `spec` once it is in the ledger; None if the thread died first."""
    deadline = time.monotonic() + RUN_ID_WAIT_S
    digest = spec.content_hash()
    while time.monotonic() < deadline:
        for run in state.ledger.list_runs(20):
            if (
                run.batch_name == spec.name
                and run.batch_hash == digest
                and (run.heartbeat_at or run.started_at) >= asked
            ):
                return run
        if not thread.is_alive():
            return None
        time.sleep(0.2)
    return None


@router.get("", response_model=list[BatchRun], summary="Recent batch runs, newest first")
async def list_batches(request: Request, _: Reader, limit: Annotated[int, Query(ge=1, le=500)] = 20) -> list[BatchRun]:
    state = api_state(request)
    runs = await asyncio.to_thread(state.ledger.list_runs, limit + 5)
    return [_run(r) for r in runs if not r.run_id.startswith(API_RUN_PREFIX)][:limit]


@router.get("/{run_id}", responses=errors(404), summary="A batch run: its tasks, attempts and totals")
async def get_batch(request: Request, run_id: str, _: Reader) -> dict[str, Any]:
    state = api_state(request)
    try:
        summary = await asyncio.to_thread(run_summary, state.ledger, run_id, explain=True)
    except KeyError:
        raise HTTPException(404, f"no run {run_id!r}") from None
    return summary.with_ui_url(_ui(summary.run.flow_run_id)).model_dump(mode="json")


@router.post(
    "/{run_id}/cancel",
    responses={**errors(404), 503: {"description": "Prefect could not be reached to cancel the flow run"}},
    response_model=CancelAnswer,
    status_code=202,
    summary="Cancel a batch run (as the Prefect UI's Cancel does)",
)
async def cancel_batch(request: Request, run_id: str, who: Admin) -> CancelAnswer:
    state = api_state(request)
    try:
        result = await asyncio.to_thread(cancel_run, state.ledger, run_id)
    except KeyError:
        raise HTTPException(404, f"no run {run_id!r}") from None
    except CancelFailed as exc:
        raise HTTPException(503, str(exc)) from None
    return CancelAnswer(run_id=run_id, outcome=result.outcome.value, status=str(result.status))  # type: ignore[arg-type]


__all__ = ["router"]
