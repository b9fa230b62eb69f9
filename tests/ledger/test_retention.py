"""`prune`: finished runs before DATE go (their sums kept), or only their answers; unfinished runs stay whole;
one transaction; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select, update

from ledger import (
    AttemptRecord,
    Ledger,
    NewTask,
    ProviderUsage,
    RunStatus,
    UsageTotal,
    keep_api_task,
    prune,
    record_vendor_submission,
    vendor_requests,
)
from ledger.models import ApiDeferredTask, ProviderEvent, Run, TaskRow
from providers import TokenUsage

OLD = datetime(2026, 10, 1, 9, tzinfo=UTC)
NEW = datetime(2026, 11, 20, 9, tzinfo=UTC)


def _run(ledger: Ledger, engine: Engine, name: str, when: datetime, finished: bool) -> str:
    run_id, _ = ledger.start_or_resume_run(
        batch_name=name, batch_hash=name, team="qa", strategy="priority_based",
        tasks=[NewTask(task_id=t, task_type="code_review", priority="normal") for t in ("a", "b")], fresh=True,
    )  # fmt: skip
    attempts = [
        AttemptRecord(
            run_id=run_id,
            task_id=t,
            provider_id="p",
            task_type="code_review",
            attempt=n,
            outcome=outcome,
            started_at=when + timedelta(minutes=n),
            finished_at=when + timedelta(minutes=n),
            subscription="s1",
            usage=TokenUsage(input=100, output=10),
            cost_usd=0.5 if outcome == "success" else 0.0,
            output="the answer" if outcome == "success" else None,
        )
        for t, n, outcome in (("a", 1, "success"), ("b", 1, "timeout"), ("b", 2, "success"))
    ]
    for task in ("a", "b"):
        mine = [a for a in attempts if a.task_id == task]
        ledger.finish_task(run_id, task, status="completed", provider_id="p", output="the answer", attempts=mine)
    with engine.begin() as conn:
        values = {"started_at": when, "finished_at": when + timedelta(hours=1) if finished else None}
        values["status"] = RunStatus.COMPLETED if finished else RunStatus.RUNNING
        conn.execute(update(Run).where(Run.run_id == run_id).values(**values))
    return run_id


def _count(engine: Engine, table: object) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(table)) or 0  # type: ignore[arg-type]


def test_prune_keeps_totals_and_recent_and_unfinished_runs(engine: Engine) -> None:
    ledger = Ledger(engine)
    old = _run(ledger, engine, "old", OLD, finished=True)
    stuck = _run(ledger, engine, "stuck", OLD, finished=False)
    recent = _run(ledger, engine, "recent", NEW, finished=True)
    with engine.begin() as conn:
        conn.execute(
            ProviderEvent.__table__.insert(),
            [{"provider_id": "p", "kind": "circuit_opened", "detail": {}, "at": at} for at in (OLD, NEW)],
        )
    for run_id in (old, recent):  # a task of each answered through a vendor batch, kept as the API keeps one
        record_vendor_submission(ledger, run_id, "p", f"msgbatch_{run_id}", {"a": "sb-1"})
        keep_api_task(ledger, run_id, "a", {"id": "a", "type": "t", "prompt": "p"}, "host:1")
    cutoff = datetime(2026, 11, 1, tzinfo=UTC)
    dry = prune(engine, cutoff, dry_run=True)
    assert (dry.runs, dry.attempts, dry.tasks, dry.events, dry.unfinished_kept) == (1, 3, 2, 1, 1)
    assert _count(engine, ProviderUsage) == 9  # a dry run changes nothing
    result = prune(engine, cutoff)
    assert result.cost_usd == pytest.approx(1.0) and result.total_rows == 2  # success and timeout rows
    assert ledger.get_run(old) is None and ledger.get_run(stuck) is not None and ledger.get_run(recent) is not None
    assert _count(engine, ProviderUsage) == 6 and _count(engine, TaskRow) == 4 and _count(engine, ProviderEvent) == 1
    assert [w.run_id for w in vendor_requests(ledger, old) + vendor_requests(ledger, recent)] == [recent]
    with engine.connect() as conn:
        assert conn.execute(select(ApiDeferredTask.run_id)).scalars().all() == [recent]  # no old prompt left
    with engine.connect() as conn:
        rows = conn.execute(
            select(UsageTotal.day, UsageTotal.outcome, UsageTotal.attempts, UsageTotal.first_attempts,
                   UsageTotal.cost_usd, UsageTotal.tokens_input, UsageTotal.subscription, UsageTotal.team)
            .order_by(UsageTotal.outcome)
        ).all()  # fmt: skip
    assert [tuple(r) for r in rows] == [
        ("2026-10-01", "success", 2, 1, 1.0, 200, "s1", None),
        ("2026-10-01", "timeout", 1, 1, 0.0, 100, "s1", None),
    ]
    assert prune(engine, cutoff).runs == 0  # again: nothing left to prune, totals not doubled
    assert _count(engine, UsageTotal) == 2


def test_outputs_only_clears_answers_and_keeps_rows(engine: Engine) -> None:
    ledger = Ledger(engine)
    old = _run(ledger, engine, "old", OLD, finished=True)
    recent = _run(ledger, engine, "recent", NEW, finished=True)
    result = prune(engine, datetime(2026, 11, 1, tzinfo=UTC), outputs_only=True)
    assert (result.runs, result.cost_usd, result.total_rows) == (1, 0.0, 0)
    assert [s.output for s in ledger.task_states(old).values()] == [None, None]
    assert all(a.output is None for a in ledger.attempts(old)) and len(ledger.attempts(old)) == 3
    assert [s.output for s in ledger.task_states(recent).values()] == ["the answer", "the answer"]
    assert _count(engine, UsageTotal) == 0
