"""Tasks posted to the HTTP API with a deadline, kept while they route in the background (batches.single): the
task's document, and which API process routes it. A clean stop releases a task that waits in a vendor batch
(owner None); the next API start claims it and polls that vendor batch. Rows go once the task's outcome is
recorded, so prompts do not stay in the ledger."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from ledger.models import ApiDeferredTask
from ledger.records import _Record
from ledger.store import Ledger
from providers import utc_now


class KeptTask(_Record):
    run_id: str
    task_id: str
    task: dict[str, Any]


def keep_api_task(ledger: Ledger, run_id: str, task_id: str, task: dict[str, Any], owner: str) -> None:
    now = utc_now()
    with Session(ledger.engine) as session, session.begin():
        session.merge(
            ApiDeferredTask(run_id=run_id, task_id=task_id, task=task, owner=owner, created_at=now, updated_at=now)
        )


def forget_api_task(ledger: Ledger, run_id: str, task_id: str) -> None:
    with Session(ledger.engine) as session, session.begin():
        session.execute(
            delete(ApiDeferredTask).where(ApiDeferredTask.run_id == run_id, ApiDeferredTask.task_id == task_id)
        )


def release_api_task(ledger: Ledger, run_id: str, task_id: str) -> None:
    """This process stops routing the task: the next API start may take it."""
    with Session(ledger.engine) as session, session.begin():
        session.execute(
            update(ApiDeferredTask)
            .where(ApiDeferredTask.run_id == run_id, ApiDeferredTask.task_id == task_id)
            .values(owner=None, updated_at=utc_now())
        )


def claim_api_tasks(ledger: Ledger, owner: str, gone: Callable[[str], bool]) -> list[KeptTask]:
    """Take every kept task that was released, or whose owner `gone` says has exited; each is taken by one
    process only (a compare-and-set on its owner), also when several start at once."""
    with Session(ledger.engine) as session:
        rows = session.execute(
            select(ApiDeferredTask.run_id, ApiDeferredTask.task_id, ApiDeferredTask.owner)
            .where(or_(ApiDeferredTask.owner.is_(None), ApiDeferredTask.owner != owner))
            .order_by(ApiDeferredTask.created_at)
        ).all()
    claimed: list[KeptTask] = []
    for run_id, task_id, previous in rows:
        if previous is not None and not gone(previous):
            continue  # routed by a live process
        mine = ApiDeferredTask.run_id == run_id, ApiDeferredTask.task_id == task_id
        was = ApiDeferredTask.owner.is_(None) if previous is None else ApiDeferredTask.owner == previous
        with Session(ledger.engine) as session, session.begin():
            taken = session.execute(update(ApiDeferredTask).where(*mine, was).values(owner=owner, updated_at=utc_now()))
            if taken.rowcount != 1:  # type: ignore[attr-defined]
                continue  # another process took it first
            task = session.scalar(select(ApiDeferredTask.task).where(*mine))
        if task is not None:
            claimed.append(KeptTask(run_id=run_id, task_id=task_id, task=task))
    return claimed


__all__ = ["KeptTask", "claim_api_tasks", "forget_api_task", "keep_api_task", "release_api_task"]
