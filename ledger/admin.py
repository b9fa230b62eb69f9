"""The HTTP API's records in the ledger: the provider overlay, the record of admin changes, task preferences.

Every process that routes reads the overlay (batches, the API, workers); the overlay's version (how many rows
and the newest change) tells a running router cheaply whether to look again.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from ledger.models import AdminChange, ProviderOverlayRow, TaskPreferenceRow
from ledger.records import _Record
from ledger.store import Ledger
from providers import utc_now


class ProviderOverlay(_Record):
    """A provider as the API set it; `config` None: removed through the API."""

    provider_id: str
    config: dict[str, Any] | None
    updated_by: str
    updated_at: datetime


class AdminChangeRecord(_Record):
    at: datetime
    who: str
    action: str
    target: str
    detail: dict[str, Any] | None = None


class TaskPreference(_Record):
    run_id: str
    task_id: str
    provider: str | None = None
    model: str | None = None
    set_by: str
    set_at: datetime


OverlayVersion = tuple[int, datetime | None]


def provider_overlays(ledger: Ledger) -> list[ProviderOverlay]:
    with Session(ledger.engine) as session:
        rows = session.scalars(select(ProviderOverlayRow).order_by(ProviderOverlayRow.updated_at)).all()
        return [
            ProviderOverlay(
                provider_id=r.provider_id, config=r.config, updated_by=r.updated_by, updated_at=r.updated_at
            )
            for r in rows
        ]


def overlay_version(ledger: Ledger) -> OverlayVersion:
    """(rows, newest change): changes whenever the overlay does."""
    with Session(ledger.engine) as session:
        count, newest = session.execute(
            select(func.count(), func.max(ProviderOverlayRow.updated_at)).select_from(ProviderOverlayRow)
        ).one()
        return int(count), newest


def set_provider_overlay(
    ledger: Ledger, provider_id: str, config: dict[str, Any] | None, *, who: str, action: str
) -> None:
    """Set (or, with `config` None, mark removed) a provider in the overlay and record who did it, in one
    transaction."""
    now = utc_now()
    with Session(ledger.engine) as session, session.begin():
        row = session.get(ProviderOverlayRow, provider_id)
        if row is None:
            row = ProviderOverlayRow(provider_id=provider_id)
            session.add(row)
        row.config, row.updated_by, row.updated_at = config, who, now
        session.add(AdminChange(at=now, who=who, action=action, target=f"provider:{provider_id}", detail=config))


def drop_provider_overlay(ledger: Ledger, provider_id: str, *, who: str) -> bool:
    """Forget the API's entry for a provider (the file's, if any, applies again); False when there was none."""
    now = utc_now()
    with Session(ledger.engine) as session, session.begin():
        gone = session.execute(delete(ProviderOverlayRow).where(ProviderOverlayRow.provider_id == provider_id))
        if gone.rowcount:
            session.add(AdminChange(at=now, who=who, action="provider.revert", target=f"provider:{provider_id}"))
        return bool(gone.rowcount)


def record_admin_change(ledger: Ledger, *, who: str, action: str, target: str, detail: dict[str, Any] | None) -> None:
    with Session(ledger.engine) as session, session.begin():
        session.add(AdminChange(at=utc_now(), who=who, action=action, target=target, detail=detail))


def admin_changes(ledger: Ledger, limit: int = 100) -> list[AdminChangeRecord]:
    """The newest changes first."""
    with Session(ledger.engine) as session:
        rows = session.scalars(select(AdminChange).order_by(AdminChange.id.desc()).limit(limit)).all()
        return [AdminChangeRecord(at=r.at, who=r.who, action=r.action, target=r.target, detail=r.detail) for r in rows]


def set_task_preference(
    ledger: Ledger, run_id: str, task_id: str, *, provider: str | None, model: str | None, who: str
) -> None:
    now = utc_now()
    with Session(ledger.engine) as session, session.begin():
        row = session.get(TaskPreferenceRow, (run_id, task_id))
        if row is None:
            row = TaskPreferenceRow(run_id=run_id, task_id=task_id)
            session.add(row)
        row.provider, row.model, row.set_by, row.set_at = provider, model, who, now
        detail = {"provider": provider, "model": model}
        session.add(
            AdminChange(at=now, who=who, action="task.prefer", target=f"task:{run_id}:{task_id}", detail=detail)
        )


def task_preferences(ledger: Ledger, run_id: str, task_ids: Collection[str] | None = None) -> dict[str, TaskPreference]:
    """The run's task preferences (or only those of `task_ids`), by task id."""
    query = select(TaskPreferenceRow).where(TaskPreferenceRow.run_id == run_id)
    if task_ids is not None:
        query = query.where(TaskPreferenceRow.task_id.in_(list(task_ids)))
    with Session(ledger.engine) as session:
        return {
            r.task_id: TaskPreference(
                run_id=r.run_id, task_id=r.task_id, provider=r.provider, model=r.model, set_by=r.set_by, set_at=r.set_at
            )
            for r in session.scalars(query)
        }


__all__ = [
    "AdminChangeRecord",
    "OverlayVersion",
    "ProviderOverlay",
    "TaskPreference",
    "admin_changes",
    "drop_provider_overlay",
    "overlay_version",
    "provider_overlays",
    "record_admin_change",
    "set_provider_overlay",
    "set_task_preference",
    "task_preferences",
]
