"""Tasks waiting in (or answered through) a vendor's batch API: what a resumed run polls instead of resubmitting,
and what `show`, the run summary and the API report as "waiting in vendor batch <id>"."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ledger.models import VendorBatchRequest
from ledger.records import _Record
from ledger.store import Ledger
from providers import utc_now


class VendorState(StrEnum):
    WAITING = "waiting"
    DONE = "done"
    # Answered by a live call instead: the deadline came first, or the vendor expired or cancelled the request.
    FELL_BACK = "fell_back"
    FAILED = "failed"


class VendorWait(_Record):
    """One task's request in a vendor batch."""

    run_id: str
    task_id: str
    provider_id: str
    vendor_batch_id: str
    custom_id: str
    state: VendorState
    detail: str | None = None
    submitted_at: datetime
    updated_at: datetime


def record_vendor_submission(
    ledger: Ledger, run_id: str, provider_id: str, vendor_batch_id: str, custom_ids: dict[str, str]
) -> None:
    """Record that the tasks (task id -> custom id) wait in `vendor_batch_id`; committed before anyone waits."""
    now = utc_now()
    with Session(ledger.engine) as session, session.begin():
        for task_id, custom_id in custom_ids.items():
            session.merge(
                VendorBatchRequest(
                    run_id=run_id,
                    task_id=task_id,
                    provider_id=provider_id,
                    vendor_batch_id=vendor_batch_id,
                    custom_id=custom_id,
                    state=VendorState.WAITING.value,
                    detail=None,
                    submitted_at=now,
                    updated_at=now,
                )
            )


def settle_vendor_request(
    ledger: Ledger, run_id: str, task_id: str, provider_id: str, state: VendorState, detail: str | None = None
) -> None:
    with Session(ledger.engine) as session, session.begin():
        session.execute(
            update(VendorBatchRequest)
            .where(
                VendorBatchRequest.run_id == run_id,
                VendorBatchRequest.task_id == task_id,
                VendorBatchRequest.provider_id == provider_id,
            )
            .values(state=state.value, detail=detail, updated_at=utc_now())
        )


def vendor_requests(
    ledger: Ledger,
    run_id: str,
    task_ids: Collection[str] | None = None,
    states: Iterable[VendorState] | None = None,
) -> list[VendorWait]:
    """The run's vendor batch requests (of `task_ids`, in `states`), oldest first."""
    query = select(VendorBatchRequest).where(VendorBatchRequest.run_id == run_id)
    if task_ids is not None:
        query = query.where(VendorBatchRequest.task_id.in_(list(task_ids)))
    if states is not None:
        query = query.where(VendorBatchRequest.state.in_([s.value for s in states]))
    with Session(ledger.engine) as session:
        return [
            VendorWait(
                run_id=r.run_id,
                task_id=r.task_id,
                provider_id=r.provider_id,
                vendor_batch_id=r.vendor_batch_id,
                custom_id=r.custom_id,
                state=VendorState(r.state),
                detail=r.detail,
                submitted_at=r.submitted_at,
                updated_at=r.updated_at,
            )
            for r in session.scalars(query.order_by(VendorBatchRequest.submitted_at))
        ]


def waiting_in_vendor_batches(ledger: Ledger, run_id: str) -> dict[str, VendorWait]:
    """The run's tasks waiting in a vendor batch now, by task id."""
    return {w.task_id: w for w in vendor_requests(ledger, run_id, states=[VendorState.WAITING])}


__all__ = [
    "VendorState",
    "VendorWait",
    "record_vendor_submission",
    "settle_vendor_request",
    "vendor_requests",
    "waiting_in_vendor_batches",
]
