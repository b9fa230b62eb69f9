"""The ledger on SQLite and PostgreSQL: schema from the migration, resume rules, idempotent attempts, UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from ledger import AttemptRecord, Ledger, NewTask, RouteDecision
from ledger.db import current_revision, head_revision
from ledger.models import Base
from providers import TokenUsage

TASKS = [NewTask(task_id=t, task_type="code_review", priority="normal", team="qa") for t in ("a", "b")]


@pytest.fixture
def ledger(any_ledger: Ledger) -> Ledger:
    """On SQLite and on PostgreSQL (tests/ledger/conftest.py)."""
    return any_ledger


def _attempt(run_id: str, task_id: str, attempt: int, outcome: str = "success", cost: float = 0.01) -> AttemptRecord:
    now = datetime.now(UTC)
    return AttemptRecord(
        run_id=run_id,
        task_id=task_id,
        provider_id="p",
        task_type="code_review",
        attempt=attempt,
        outcome=outcome,
        started_at=now,
        finished_at=now + timedelta(milliseconds=5),
        usage=TokenUsage(input=10, output=3, cache_read=2),
        cost_usd=cost,
        team="qa",
    )


def test_migration_creates_exactly_the_models_schema(ledger: Ledger) -> None:
    assert current_revision(ledger.engine) == head_revision()
    with ledger.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_new_run_then_resume_keeps_completed_tasks(ledger: Ledger) -> None:
    run_id, resumed = ledger.start_or_resume_run(batch_name="b", batch_hash="h1", team="qa", strategy="s", tasks=TASKS)
    assert not resumed
    ledger.finish_task(
        run_id, "a", status="completed", provider_id="p", output="A", attempts=[_attempt(run_id, "a", 1)]
    )
    ledger.finish_task(run_id, "b", status="failed", error="boom")
    ledger.finish_run(run_id, "failed")

    again, resumed = ledger.start_or_resume_run(batch_name="b", batch_hash="h1", team="qa", strategy="s", tasks=TASKS)
    assert (again, resumed) == (run_id, True)
    states = ledger.task_states(run_id)
    assert states["a"].status == "completed" and states["a"].output == "A"
    assert states["b"].status == "pending" and states["b"].error is None
    assert ledger.get_run(run_id).status == "running"

    other, resumed = ledger.start_or_resume_run(batch_name="b", batch_hash="h2", team="qa", strategy="s", tasks=TASKS)
    assert other != run_id and not resumed
    fresh, resumed = ledger.start_or_resume_run(
        batch_name="b", batch_hash="h1", team="qa", strategy="s", tasks=TASKS, fresh=True
    )
    assert fresh != run_id and not resumed


def test_completed_run_is_not_resumed(ledger: Ledger) -> None:
    run_id, _ = ledger.start_or_resume_run(batch_name="b", batch_hash="h", team=None, strategy=None, tasks=TASKS)
    ledger.finish_run(run_id, "completed")
    again, resumed = ledger.start_or_resume_run(batch_name="b", batch_hash="h", team=None, strategy=None, tasks=TASKS)
    assert again != run_id and not resumed


def test_attempts_are_idempotent_and_numbered(ledger: Ledger) -> None:
    run_id, _ = ledger.start_or_resume_run(batch_name="b", batch_hash="h", team=None, strategy=None, tasks=TASKS)
    ledger.record_attempts([_attempt(run_id, "a", 1, "unavailable", 0.0), _attempt(run_id, "a", 2)])
    ledger.record_attempts([_attempt(run_id, "a", 2)])  # replayed: must not charge twice
    rows = ledger.attempts(run_id, "a")
    assert [(r.attempt, r.outcome) for r in rows] == [(1, "unavailable"), (2, "success")]
    assert ledger.last_attempt_numbers(run_id) == {"a": 2}
    assert rows[1].usage == TokenUsage(input=10, output=3, cache_read=2)


def test_timestamps_come_back_as_utc(ledger: Ledger) -> None:
    run_id, _ = ledger.start_or_resume_run(batch_name="b", batch_hash="h", team=None, strategy=None, tasks=TASKS)
    local = datetime(2026, 3, 29, 3, 30, tzinfo=UTC).astimezone(__import__("zoneinfo").ZoneInfo("Europe/Berlin"))
    record = _attempt(run_id, "a", 1).model_copy(update={"started_at": local, "finished_at": local})
    ledger.record_attempts([record])
    stored = ledger.attempts(run_id, "a")[0]
    assert stored.started_at.tzinfo is not None and stored.started_at.utcoffset() == timedelta(0)
    assert stored.started_at == datetime(2026, 3, 29, 3, 30, tzinfo=UTC)
    assert ledger.get_run(run_id).started_at.tzinfo is not None


def test_find_run_by_unique_prefix(ledger: Ledger) -> None:
    run_id, _ = ledger.start_or_resume_run(batch_name="b", batch_hash="h", team=None, strategy=None, tasks=TASKS)
    assert ledger.find_run(run_id[:-2]).run_id == run_id
    assert ledger.find_run("nope") is None


def test_run_state_reads_can_be_limited_to_some_tasks(ledger: Ledger) -> None:
    run_id, _ = ledger.start_or_resume_run(batch_name="b", batch_hash="h3", team="qa", strategy="s", tasks=TASKS)
    ledger.record_attempts([_attempt(run_id, "a", 1, "unavailable"), _attempt(run_id, "a", 2)])
    ledger.record_attempts([_attempt(run_id, "b", 1)])

    assert list(ledger.task_states(run_id, {"b"})) == ["b"]
    assert list(ledger.task_states(run_id)) == ["a", "b"]
    assert ledger.last_attempt_numbers(run_id, {"a"}) == {"a": 2}
    assert ledger.last_attempt_numbers(run_id) == {"a": 2, "b": 1}
    assert set(ledger.recorded_successes(run_id, {"b"})) == {"b"}
    assert set(ledger.recorded_successes(run_id)) == {"a", "b"}


def test_a_run_in_progress_elsewhere_is_not_resumed_until_its_owner_is_gone(ledger: Ledger) -> None:
    from ledger import RunInProgress

    start = {"batch_name": "b", "batch_hash": "h4", "team": "qa", "strategy": "s", "tasks": TASKS}
    run_id, _ = ledger.start_or_resume_run(**start, owner="host-a:1")
    record = ledger.get_run(run_id)
    assert record is not None and record.owner == "host-a:1" and record.heartbeat_at is not None

    seen: list[tuple[str, datetime | None]] = []

    def alive(owner: str, heartbeat_at: datetime | None) -> bool:
        seen.append((owner, heartbeat_at))
        return True

    with pytest.raises(RunInProgress) as raised:
        ledger.start_or_resume_run(**start, owner="host-b:2", owner_active=alive)
    assert raised.value.run_id == run_id and raised.value.owner == "host-a:1"
    assert seen == [("host-a:1", record.heartbeat_at)]
    # The owner itself may resume (e.g. a second run_batch in the same process) ...
    assert ledger.start_or_resume_run(**start, owner="host-a:1", owner_active=alive) == (run_id, True)
    # ... and once the owner is gone, another process takes the run over; the old owner's renewals now fail.
    assert ledger.renew_run_claim(run_id, "host-a:1")
    resumed = ledger.start_or_resume_run(**start, owner="host-b:2", owner_active=lambda owner, at: False)
    assert resumed == (run_id, True)
    assert ledger.get_run(run_id).owner == "host-b:2"  # type: ignore[union-attr]
    assert not ledger.renew_run_claim(run_id, "host-a:1")
    assert ledger.renew_run_claim(run_id, "host-b:2")


def test_a_finished_or_interrupted_run_is_resumed_whoever_owned_it(ledger: Ledger) -> None:
    start = {"batch_name": "b", "batch_hash": "h5", "team": "qa", "strategy": "s", "tasks": TASKS}
    run_id, _ = ledger.start_or_resume_run(**start, owner="host-a:1")
    ledger.finish_run(run_id, "interrupted")
    resumed = ledger.start_or_resume_run(**start, owner="host-b:2", owner_active=lambda owner, at: True)
    assert resumed == (run_id, True)


def test_history_scores_providers_only_on_what_was_their_doing(ledger: Ledger) -> None:
    run_id, _ = ledger.start_or_resume_run(batch_name="b", batch_hash="h6", team="qa", strategy="s", tasks=TASKS)
    outcomes = ["success", "unavailable", "bad_request", "budget_exceeded", "cancelled", "success"]
    ledger.record_attempts([_attempt(run_id, "a", n, outcome) for n, outcome in enumerate(outcomes, start=1)])
    (row,) = ledger.history(datetime.now(UTC) - timedelta(hours=1))
    assert (row.provider_id, row.attempts, row.successes) == ("p", 3, 2)


def test_task_status_counts(ledger: Ledger) -> None:
    run_id, _ = ledger.start_or_resume_run(batch_name="b", batch_hash="h7", team="qa", strategy="s", tasks=TASKS)
    assert ledger.task_status_counts(run_id) == {"pending": 2}
    ledger.finish_task(run_id, "a", status="completed", provider_id="p", output="A")
    assert ledger.task_status_counts(run_id) == {"pending": 1, "completed": 1}


def test_task_decisions_of_many_runs(ledger: Ledger) -> None:
    runs = [
        ledger.start_or_resume_run(batch_name="b", batch_hash=f"h8-{i}", team="qa", strategy=f"s{i}", tasks=TASKS)[0]
        for i in range(3)
    ]
    ledger.finish_task(
        runs[1], "a", status="completed", provider_id="p", output="A", decision=RouteDecision(strategy="s1", chosen="p")
    )
    decisions = ledger.task_decisions(runs, runs_per_query=2)  # two queries
    assert len(decisions) == 6
    assert decisions[(runs[1], "a")] == ("normal", RouteDecision(strategy="s1", chosen="p"), "s1")
    assert decisions[(runs[2], "b")] == ("normal", None, "s2")
