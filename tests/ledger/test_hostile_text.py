"""Whatever text a provider returns is stored and read back exactly, on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text as sql

from ledger import AttemptRecord, Ledger, LedgerWriter, NewTask, TaskOutcome, TaskStatus
from providers import TokenUsage

HOSTILE = {
    "half-emoji": "before \ud83d after",
    "nul": "a\x00b",
    "escapes": "\x1b]0;pwned\x07\x1b[2J\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\",
    "mark": "\ufdd0 starts with the escape mark",
    "big": "x" * 3_000_000 + "\ud83d\x00",
}


def _attempt(run_id: str, task_id: str, output: str) -> AttemptRecord:
    now = datetime.now(UTC)
    return AttemptRecord(
        run_id=run_id,
        task_id=task_id,
        provider_id="p",
        task_type="code_review",
        attempt=1,
        outcome="success",
        started_at=now,
        finished_at=now + timedelta(milliseconds=5),
        usage=TokenUsage(input=1, output=1),
        model=f"model-{output[:20]}",
        error_message=output[:500],
        output=output,
    )


def _start(ledger: Ledger) -> str:
    run_id, _ = ledger.start_or_resume_run(
        batch_name="hostile",
        batch_hash="h",
        team=None,
        strategy="priority_based",
        tasks=[NewTask(task_id=t, task_type="code_review", priority="normal") for t in HOSTILE],
        fresh=True,
    )
    return run_id


def test_group_committed_answers_come_back_exactly(any_ledger: Ledger) -> None:
    run_id = _start(any_ledger)
    writer = LedgerWriter(any_ledger, on_loop=False)
    done = [writer.submit(_attempt(run_id, t, out)) for t, out in HOSTILE.items()]
    done += [
        writer.submit_outcome(
            run_id, TaskOutcome(task_id=t, status=TaskStatus.COMPLETED, provider_id="p", output=out, error=out)
        )
        for t, out in HOSTILE.items()
    ]
    for future in done:
        future.result(timeout=30)
    writer.close()
    attempts = {a.task_id: a for a in any_ledger.attempts(run_id)}
    states = any_ledger.task_states(run_id)
    successes = any_ledger.recorded_successes(run_id)
    for task_id, out in HOSTILE.items():
        assert attempts[task_id].output == out
        assert attempts[task_id].error_message == out[:500]
        assert attempts[task_id].model == f"model-{out[:20]}"
        assert states[task_id].output == out and states[task_id].error == out
        assert states[task_id].status == TaskStatus.COMPLETED
        assert successes[task_id] == ("p", out)


def test_finish_task_stores_hostile_text(any_ledger: Ledger) -> None:
    run_id = _start(any_ledger)
    any_ledger.finish_task(
        run_id, "nul", status=TaskStatus.COMPLETED, output=HOSTILE["nul"], attempts=[_attempt(run_id, "nul", "\x00")]
    )
    assert any_ledger.task_state(run_id, "nul").output == HOSTILE["nul"]
    assert any_ledger.attempts(run_id, "nul")[0].output == "\x00"


def test_nul_is_stored_raw_where_the_database_takes_it(any_ledger: Ledger) -> None:
    run_id = _start(any_ledger)
    any_ledger.finish_task(run_id, "nul", status=TaskStatus.COMPLETED, output="a\x00b")
    with any_ledger.engine.connect() as conn:
        raw = conn.execute(sql("select output from tasks where task_id = 'nul'")).scalar_one()
    if any_ledger.engine.dialect.name == "sqlite":
        assert raw == "a\x00b"
    else:
        assert raw == "\ufdd0a\ufdd10000b"  # the documented escape (docs/reliability.md)


@pytest.mark.parametrize("status", [TaskStatus.FAILED])
def test_an_error_with_nul_fails_the_task_with_its_reason(any_ledger: Ledger, status: TaskStatus) -> None:
    run_id = _start(any_ledger)
    any_ledger.finish_tasks(run_id, [TaskOutcome(task_id="nul", status=status, error="vendor said \x00\ud83d")])
    assert any_ledger.task_state(run_id, "nul").error == "vendor said \x00\ud83d"
