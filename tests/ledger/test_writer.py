"""Group commit: a row's future resolves only once the row is durable; rows submitted together share a commit."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ledger import AttemptRecord, Ledger, LedgerWriter, NewTask, TaskOutcome


def _attempt(i: int, run_id: str = "r") -> AttemptRecord:
    now = datetime.now(UTC)
    return AttemptRecord(
        run_id=run_id,
        task_id=f"t{i}",
        provider_id="p",
        task_type="x",
        attempt=1,
        outcome="success",
        started_at=now,
        finished_at=now,
        cost_usd=0.01,
    )


def _rows(path: Path) -> int:
    # A separate connection: sees only what was committed.
    return sqlite3.connect(path).execute("select count(*) from provider_usage").fetchone()[0]


@pytest.mark.parametrize("on_loop", [True, False])
async def test_futures_resolve_after_the_rows_are_committed(tmp_path: Path, on_loop: bool) -> None:
    path = tmp_path / "ledger.db"
    writer = LedgerWriter(Ledger(url=f"sqlite:///{path}"), on_loop=on_loop)
    futures = [writer.submit(_attempt(i)) for i in range(50)]
    await asyncio.wrap_future(futures[0])
    if on_loop:
        # Rows submitted in one pass of the loop share one commit: the first future means all 50 are in.
        assert _rows(path) == 50
    for i, future in enumerate(futures):
        await asyncio.wrap_future(future)
        # A future resolves only once its row, and every row submitted before it, is committed. (The writer
        # thread commits whatever has queued when it wakes, so how many share its first commit varies.)
        assert _rows(path) >= i + 1
    writer.close()


def test_without_a_running_loop_the_writer_thread_commits(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    writer = LedgerWriter(Ledger(url=f"sqlite:///{path}"))
    futures = [writer.submit(_attempt(i)) for i in range(20)]
    for f in futures:
        f.result(timeout=10)  # a concurrent future: resolved by the writer thread
    assert _rows(path) == 20
    writer.close()


async def test_replayed_rows_are_not_charged_twice_and_outcomes_commit_in_order(tmp_path: Path) -> None:
    ledger = Ledger(url=f"sqlite:///{tmp_path / 'ledger.db'}")
    run_id, _ = ledger.start_or_resume_run(
        batch_name="b",
        batch_hash="h",
        team=None,
        strategy=None,
        tasks=[NewTask(task_id="t0", task_type="x", priority="normal")],
    )
    writer = LedgerWriter(ledger)
    await writer.submit(_attempt(0, run_id))
    await writer.submit(_attempt(0, run_id))  # the same idempotency key again
    await writer.submit_outcome(run_id, TaskOutcome(task_id="t0", status="completed", provider_id="p", output="A"))
    assert len(ledger.attempts(run_id)) == 1
    assert ledger.task_state(run_id, "t0").status == "completed"
    writer.close()


async def test_a_database_error_fails_the_batch_and_later_rows_still_commit(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    ledger = Ledger(url=f"sqlite:///{path}")
    writer = LedgerWriter(ledger)
    bad = writer.submit_outcome("r", TaskOutcome(task_id="t", status="pending"))  # not a final status
    with pytest.raises(ValueError, match="not a final task status"):
        await bad
    await writer.submit(_attempt(1))
    assert _rows(path) == 1
    writer.close()
