"""Nothing handed to the ledger writer is dropped: a refused row does not take the others with it, and what the
database cannot take now waits in the local spool until it can (the writer's next commit, or the next start)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from ledger import (
    AttemptRecord,
    Ledger,
    LedgerWriter,
    NewTask,
    TaskOutcome,
    TaskStatus,
    pending_rows,
    replay_spool,
    spool_dir,
)
from ledger.spool import Spool


def _attempt(i: int, run_id: str, *, attempt: int = 1, output: str = "ok") -> AttemptRecord:
    now = datetime.now(UTC)
    return AttemptRecord(
        run_id=run_id,
        task_id=f"t{i}",
        provider_id="p",
        task_type="x",
        attempt=attempt,
        outcome="success",
        started_at=now,
        finished_at=now,
        cost_usd=0.01,
        output=output,
    )


def _start(ledger: Ledger, n: int) -> str:
    run_id, _ = ledger.start_or_resume_run(
        batch_name="b",
        batch_hash="h",
        team=None,
        strategy=None,
        tasks=[NewTask(task_id=f"t{i}", task_type="x", priority="normal") for i in range(n)],
        fresh=True,
    )
    return run_id


def test_a_refused_row_goes_to_the_spool_and_the_rest_of_its_group_commit(any_ledger: Ledger) -> None:
    run_id = _start(any_ledger, 20)
    writer = LedgerWriter(any_ledger, on_loop=False)
    rows = [_attempt(i, run_id) for i in range(20)]
    rows[7] = _attempt(7, run_id, attempt=2**70)  # no integer column takes it
    futures = [writer.submit(r) for r in rows]
    for future in futures:
        future.result(timeout=30)  # every row is safe: 19 in the ledger, 1 in the spool
    writer.close()
    stored = {a.task_id for a in any_ledger.attempts(run_id)}
    assert stored == {f"t{i}" for i in range(20)} - {"t7"}
    assert pending_rows(any_ledger.url, run_id) == 1
    assert writer.spool.path.exists()
    kept = [json.loads(line) for line in writer.spool.path.read_text().splitlines()]
    assert kept[0]["kind"] == "header" and "password" not in kept[0]["ledger"]
    assert [k["row"]["task_id"] for k in kept[1:]] == ["t7"]


def test_the_callers_own_mistake_still_fails_its_future(tmp_path: Path) -> None:
    writer = LedgerWriter(Ledger(url=f"sqlite:///{tmp_path / 'l.db'}"), on_loop=False)
    bad = writer.submit_outcome("r", TaskOutcome(task_id="t", status="pending"))
    with pytest.raises(ValueError, match="not a final task status"):
        bad.result(timeout=30)
    assert not writer.spool.path.exists()
    writer.close()


async def test_a_locked_database_spools_and_the_writer_writes_back_when_it_answers(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    url = f"sqlite:///{path}"
    Ledger(url=url).close()  # create and migrate
    # A short busy timeout, so the lock fails the commit at once rather than after 30 s.
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 0.05})
    ledger = Ledger(engine, url=url)
    run_id = _start(ledger, 3)
    writer = LedgerWriter(ledger)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process holding the write lock (a backup, say)
    await asyncio.gather(*(asyncio.wrap_future(writer.submit(_attempt(i, run_id))) for i in range(2)))
    assert pending_rows(url, run_id) == 2
    holder.execute("ROLLBACK")
    holder.close()
    assert pending_rows(url, run_id) == 2
    # The database answers again: the spool is written back with the next commit (on the writer's thread now).
    await asyncio.wrap_future(writer.submit(_attempt(2, run_id)))
    assert sorted(a.task_id for a in ledger.attempts(run_id)) == ["t0", "t1", "t2"]
    assert pending_rows(url, run_id) == 0 and not writer.spool.path.exists()
    writer.close()


def test_rows_a_dead_process_spooled_are_written_at_the_next_start(any_ledger: Ledger, tmp_path: Path) -> None:
    run_id = _start(any_ledger, 3)
    any_ledger.finish_task(run_id, "t2", status=TaskStatus.COMPLETED, output="done later")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    spool = Spool(any_ledger.url)
    spool.path = spool.path.with_name(f"{spool.path.name.split('-')[0]}-{int(dead.stdout)}-abcdef.jsonl")
    spool.add(
        [
            _attempt(0, run_id, output="half \ud83d and \x00"),
            (
                run_id,
                TaskOutcome(task_id="t0", status=TaskStatus.COMPLETED, provider_id="p", output="half \ud83d and \x00"),
            ),
            (run_id, TaskOutcome(task_id="t2", status=TaskStatus.CANCELLED, error="cancelled (interrupted)")),
        ]
    )
    assert pending_rows(any_ledger.url) == 3
    report = replay_spool(any_ledger.engine.begin, any_ledger.url)
    assert report is not None and report.rows == 3 and report.runs == (run_id,) and report.left == 0
    assert report.line(any_ledger.url).startswith("warning: wrote 3 spooled row(s) to the ledger at ")
    assert any_ledger.attempts(run_id)[0].output == "half \ud83d and \x00"
    assert any_ledger.task_state(run_id, "t0").output == "half \ud83d and \x00"
    assert any_ledger.task_state(run_id, "t2").status == TaskStatus.COMPLETED  # a late row never undoes it
    assert pending_rows(any_ledger.url) == 0 and not spool.path.exists()
    assert not list(spool_dir().glob(f"{spool.path.name.split('-')[0]}-*"))
    assert replay_spool(any_ledger.engine.begin, any_ledger.url) is None  # nothing left: nothing said


def test_a_spool_is_only_replayed_into_its_own_ledger(tmp_path: Path) -> None:
    one, other = Ledger(url=f"sqlite:///{tmp_path / 'one.db'}"), Ledger(url=f"sqlite:///{tmp_path / 'other.db'}")
    run_id = _start(one, 1)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    spool = Spool(one.url)
    spool.path = spool.path.with_name(f"{spool.path.name.split('-')[0]}-{int(dead.stdout)}-abcdef.jsonl")
    spool.add([_attempt(0, run_id)])
    assert replay_spool(other.engine.begin, other.url) is None
    assert replay_spool(one.engine.begin, one.url) is not None
    assert len(one.attempts(run_id)) == 1


async def test_another_process_holding_the_write_lock_never_stalls_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    ledger = Ledger(url=f"sqlite:///{path}")  # the usual 30 s busy timeout
    run_id = _start(ledger, 3)
    writer = LedgerWriter(ledger)  # SQLite: commits on the loop while nothing is in the way
    await writer.submit(_attempt(0, run_id))
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    gaps: list[float] = []

    async def ticker() -> None:
        last = asyncio.get_running_loop().time()
        for _ in range(40):
            await asyncio.sleep(0.05)
            now = asyncio.get_running_loop().time()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    waiting = asyncio.gather(writer.submit(_attempt(1, run_id)), writer.submit(_attempt(2, run_id)))
    await asyncio.sleep(1.5)
    assert not waiting.done()  # durable means committed: it waits for the lock, off the loop
    holder.execute("ROLLBACK")
    holder.close()
    await asyncio.wait_for(waiting, 10)
    await ticking
    assert max(gaps) < 0.5, max(gaps)  # the loop went on while the commit waited
    assert sorted(a.task_id for a in ledger.attempts(run_id)) == ["t0", "t1", "t2"]
    assert pending_rows(ledger.url, run_id) == 0  # committed, not spooled: the lock ended within the busy timeout
    writer.close()


def _dead_spool(ledger: Ledger) -> Spool:
    """A spool file as a process that has ended left it."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    spool = Spool(ledger.url)
    spool.path = spool.path.with_name(f"{spool.path.name.split('-')[0]}-{int(dead.stdout)}-abcdef.jsonl")
    return spool


def test_a_row_the_database_keeps_refusing_does_not_hold_up_the_rest_of_its_spool_file(any_ledger: Ledger) -> None:
    run_id = _start(any_ledger, 4)
    spool = _dead_spool(any_ledger)
    stuck = _attempt(1, run_id, attempt=2**70)  # no integer column takes it, at this start or any other
    spool.add(
        [
            _attempt(0, run_id),
            stuck,
            _attempt(2, run_id),
            (run_id, TaskOutcome(task_id="t2", status=TaskStatus.COMPLETED, provider_id="p", output="ok")),
            _attempt(3, run_id),
        ]
    )
    report = replay_spool(any_ledger.engine.begin, any_ledger.url)
    assert report is not None and (report.rows, report.left) == (4, 1)
    assert sorted(a.task_id for a in any_ledger.attempts(run_id)) == ["t0", "t2", "t3"]
    assert any_ledger.task_state(run_id, "t2").status == TaskStatus.COMPLETED
    line = report.line(any_ledger.url)
    assert "wrote 4 spooled row(s)" in line and "it refused 1 (" in line and "kept in" in line
    assert report.refused and report.refused[0] in line  # why, as the database said it
    # Only the refused row waits, in the same file, for the next start.
    assert [json.loads(x)["row"]["task_id"] for x in spool.path.read_text().splitlines()[1:]] == ["t1"]
    assert pending_rows(any_ledger.url, run_id) == 1
    again = replay_spool(any_ledger.engine.begin, any_ledger.url)
    assert again is not None and (again.rows, again.left) == (0, 1)
    assert len(any_ledger.attempts(run_id)) == 3  # nothing written twice


async def test_a_writer_replaying_its_spool_writes_all_but_the_refused_row_and_does_not_retry_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.db"
    url = f"sqlite:///{path}"
    Ledger(url=url).close()
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 0.05})
    ledger = Ledger(engine, url=url)
    run_id = _start(ledger, 4)
    writer = LedgerWriter(ledger)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # the database out of reach: every row goes to the spool as it is
    rows = [_attempt(0, run_id), _attempt(1, run_id, attempt=2**70), _attempt(2, run_id)]
    await asyncio.gather(*(asyncio.wrap_future(writer.submit(r)) for r in rows))
    assert pending_rows(url, run_id) == 3
    holder.execute("ROLLBACK")
    holder.close()
    # The database answers again: the next commit writes the spool back, all but the row it refuses.
    await asyncio.wrap_future(writer.submit(_attempt(3, run_id)))
    assert sorted(a.task_id for a in ledger.attempts(run_id)) == ["t0", "t2", "t3"]
    assert pending_rows(url, run_id) == 1 and writer.spool.rows == 0  # kept for the next start, not retried here
    writer.close()
