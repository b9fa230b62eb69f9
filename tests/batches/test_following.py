"""Following a run from its ledger rows: each failover and rotation reported once, as its second attempt lands."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from batches import AttemptFeed
from ledger import AttemptRecord, Ledger, NewTask


def _attempt(run_id: str, task: str, n: int, provider: str, outcome: str, sub: str | None = None) -> AttemptRecord:
    start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=n)
    return AttemptRecord(
        run_id=run_id,
        task_id=task,
        provider_id=provider,
        subscription=sub,
        task_type="code_review",
        attempt=n,
        outcome=outcome,
        started_at=start,
        finished_at=start,
    )


def test_moves_are_reported_once_as_they_are_recorded_whatever_the_order(sqlite_url: str) -> None:
    ledger = Ledger(url=sqlite_url)
    run_id, _ = ledger.start_or_resume_run(
        batch_name="b",
        batch_hash="h",
        team=None,
        strategy="priority_based",
        tasks=[NewTask(task_id=t, task_type="code_review", priority="normal") for t in ("a", "b", "c")],
    )
    other, _ = ledger.start_or_resume_run(
        batch_name="other",
        batch_hash="o",
        team=None,
        strategy=None,
        tasks=[NewTask(task_id="x", task_type="code_review", priority="normal")],
    )
    feed = AttemptFeed(ledger, run_id)
    assert feed.poll() == []
    ledger.record_attempts(
        [
            _attempt(run_id, "a", 1, "flaky", "unavailable"),
            _attempt(run_id, "b", 1, "claude", "quota_exhausted", "team-a"),
            _attempt(other, "x", 1, "flaky", "unavailable"),  # another run's rows are not this run's moves
            _attempt(other, "x", 2, "steady", "success"),
        ]
    )
    assert feed.poll() == []  # a failed attempt alone is no move yet
    ledger.record_attempts(
        [
            _attempt(run_id, "a", 2, "steady", "success"),
            _attempt(run_id, "b", 2, "claude", "success", "team-b"),
            _attempt(run_id, "c", 2, "steady", "success"),  # its first attempt is recorded after it
        ]
    )
    assert [m.describe() for m in feed.poll()] == [
        "failover: a flaky: unavailable → steady",
        "rotation: b claude/team-a: quota_exhausted → claude/team-b",
    ]
    ledger.record_attempts([_attempt(run_id, "c", 1, "flaky", "timeout")])
    assert [m.describe() for m in feed.poll()] == ["failover: c flaky: timeout → steady"]
    assert feed.poll() == []  # nothing reported twice
