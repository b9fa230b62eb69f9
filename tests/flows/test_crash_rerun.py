"""A batch killed mid-way (SIGKILL, no cleanup at all) and run again finishes every task exactly once.

The ledger decides what finished: the re-run resumes the same run, never calls a provider again for a task
that completed, nor for one whose successful attempt was committed when the process died before marking the
task completed, and never records a second charge for either. Per-node mode, chunked mode in one chunk, and
chunked mode in several chunks alike.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from batches import load_spec
from flows.batch import chunks
from ledger import AttemptRecord, Ledger, NewTask, TaskOutcome
from tests.flows.prefect_kit import prefect_server

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

CHAINS = 13  # a root, then 13 chains of three: 40 tasks, 13 of them able to run at once
TASKS = 1 + 3 * CHAINS
# (runner settings, chunk size in chunked mode) per mode. A chunk size of 10 groups the 4 DAG levels into 3
# chunks: [root + first level] (14 tasks), [second level] (13), [third level] (13); 2,000 (the default) in one.
MODES = {
    "per-node": ("{chunk_threshold: 200}", None),
    "chunked": ("{chunk_threshold: 1}", 2000),
    "chunked-3-chunks": ("{chunk_threshold: 1, chunk_size: 10}", 10),
}


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real server: the embedded default for `switchboard run` (ephemeral mode would lose task history)."""
    with prefect_server(tmp_path_factory.mktemp("crash-server")) as running:
        yield running.api_url


@pytest.fixture
def env(tmp_path: Path, api_url: str) -> dict[str, str]:
    environment = dict(
        os.environ,
        SWITCHBOARD_HOME=str(tmp_path / "home"),
        SWITCHBOARD_DATABASE_URL=f"sqlite:///{tmp_path / 'ledger.db'}",
        PREFECT_API_URL=api_url,
    )
    environment.pop("SWITCHBOARD_PROVIDERS", None)
    return environment


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    """plan -> a{i} -> b{i} -> c{i} for 13 chains: fan-out, then 13 chains side by side."""
    path = tmp_path / "chains.yaml"
    lines = ["name: chains", "tasks:", "  - {id: plan, type: code_analysis, prompt: plan the work}"]
    for i in range(CHAINS):
        lines += [
            f"  - {{id: a{i}, type: code_analysis, prompt: map part {i}, depends_on: [plan]}}",
            f"  - {{id: b{i}, type: pr_review, prompt: review part {i}, depends_on: [a{i}]}}",
            f"  - {{id: c{i}, type: summarization, prompt: sum up part {i}, depends_on: [b{i}]}}",
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _providers(tmp_path: Path, name: str, latency_ms: int, mode: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"runner: {MODES[mode][0]}\n"
        f"providers:\n  mock: {{type: local_mock, latency_ms: {latency_ms}, max_concurrency: 16}}\n"
    )
    return path


def _query(db_path: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    try:
        with sqlite3.connect(db_path, timeout=5) as db:
            return db.execute(sql, args).fetchall()
    except sqlite3.OperationalError:  # not created or not migrated yet
        return []


def _attempts(db_path: Path) -> list[tuple[Any, ...]]:
    return _query(
        db_path,
        "select run_id, task_id, attempt, provider_id, outcome, idempotency_key, started_at, finished_at, cost_usd, "
        "output from provider_usage order by task_id, attempt",
    )


def _successes(db_path: Path) -> set[str]:
    return {row[0] for row in _query(db_path, "select task_id from provider_usage where outcome = 'success'")}


def _rerun(tmp_path: Path, env: dict[str, str], spec: Path, mode: str) -> dict[str, Any]:
    fast = _providers(tmp_path, "fast", 0, mode)
    rerun = subprocess.run(
        [sys.executable, "-m", "cli", "run", str(spec), "--json", "--providers", str(fast)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "resuming" in rerun.stderr
    out: dict[str, Any] = json.loads(rerun.stdout)
    assert out["totals"]["completed"] == TASKS and {t["status"] for t in out["tasks"]} == {"completed"}
    return out


def _assert_each_task_charged_once(db: Path, out: dict[str, Any], run_id: str) -> list[tuple[Any, ...]]:
    attempts = _attempts(db)
    successes: dict[str, int] = {}
    for attempt in attempts:
        if attempt[4] == "success":
            successes[attempt[1]] = successes.get(attempt[1], 0) + 1
    assert successes == {t["id"]: 1 for t in out["tasks"]}  # one charge per task, none twice
    keys = [a[5] for a in attempts]
    assert len(keys) == len(set(keys))
    assert {a[0] for a in attempts} == {run_id}
    assert len(_query(db, "select run_id from runs")) == 1
    return attempts


def _chunk_task_runs(api_url: str, flow_run_id: str, expected: int) -> list[str]:
    """Names of the flow run's `route-chunk` task runs (the server records them a moment after they ran)."""
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    flow_runs = FlowRunFilter(id=FlowRunFilterId(any_=[UUID(flow_run_id)]))
    deadline = time.monotonic() + 30
    with SyncPrefectClient(api_url) as client:
        while True:
            names = [t.name for t in client.read_task_runs(flow_run_filter=flow_runs) if t.name.startswith("chunk-")]
            if len(names) >= expected or time.monotonic() > deadline:
                return sorted(names)
            time.sleep(0.5)


@pytest.mark.parametrize("mode", list(MODES))
def test_killed_with_many_tasks_in_flight_resumes_and_completes_every_task_once(
    tmp_path: Path, env: dict[str, str], spec: Path, api_url: str, mode: str
) -> None:
    db = tmp_path / "ledger.db"
    slow = _providers(tmp_path, "slow", 300, mode)
    first = subprocess.Popen(
        [sys.executable, "-m", "cli", "run", str(spec), "--json", "--providers", str(slow)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and first.poll() is None:
            # The root and some of the first level have answered; the rest of that level and the chains
            # behind the finished ones are in flight (300 ms each, 13 at a time).
            if len(_successes(db)) >= 8:
                break
            time.sleep(0.02)
        first.send_signal(signal.SIGKILL)  # a real crash: no handler, no cleanup, no flush
        first.wait(30)
    finally:
        if first.poll() is None:
            first.kill()
        stderr = first.stderr.read() if first.stderr else ""
        if first.stderr:
            first.stderr.close()
    assert first.returncode == -signal.SIGKILL, stderr[-3000:]

    runs = _query(db, "select run_id, status from runs")
    assert len(runs) == 1 and runs[0][1] == "running", runs  # the kill left it unfinished
    run_id = runs[0][0]
    answered = _successes(db)
    marked = {row[0] for row in _query(db, "select task_id from tasks where status = 'completed'")}
    assert 8 <= len(answered) < TASKS and marked <= answered
    attempts_before = _attempts(db)
    print(
        f"{mode}: killed with {len(answered)}/{TASKS} tasks answered, {len(marked)} marked completed, "
        f"{len(attempts_before)} attempt rows"
    )

    out = _rerun(tmp_path, env, spec, mode)
    assert out["run"]["id"] == run_id  # resumed, not a new run
    attempts_after = _assert_each_task_charged_once(db, out, run_id)
    # Tasks that had answered were not executed again, whether or not they had been marked completed:
    # their attempt rows are exactly what they were.
    assert [a for a in attempts_after if a[1] in answered] == [a for a in attempts_before if a[1] in answered]
    chunk_size = MODES[mode][1]
    if chunk_size is not None:
        expected = len(chunks(load_spec(spec), chunk_size))
        assert expected == (3 if chunk_size == 10 else 1)
        names = _chunk_task_runs(api_url, out["run"]["flow_run_id"], expected)
        assert len(names) == expected, names  # the re-run went through that many chunks


@pytest.mark.parametrize("mode", list(MODES))
def test_a_committed_success_whose_task_was_not_marked_is_finished_from_the_ledger(
    tmp_path: Path, env: dict[str, str], spec: Path, mode: str
) -> None:
    """The process died between committing a task's successful attempt and marking the task completed: the run
    is `running` under a dead owner, the task `pending`, its success on record. The re-run takes the answer from
    the ledger; the provider is not called for it (no new attempt row, and the recorded answer, which the mock
    would never give, is the task's output and what its dependent was handed)."""
    ledger = Ledger(url=env["SWITCHBOARD_DATABASE_URL"])
    batch = load_spec(spec)
    gone = subprocess.Popen(["true"])
    gone.wait()  # its pid names a process that no longer runs: the crashed owner
    run_id, _ = ledger.start_or_resume_run(
        batch_name=batch.name,
        batch_hash=batch.content_hash(),
        team=None,
        strategy="priority_based",
        tasks=[NewTask(task_id=t.id, task_type=t.type, priority="normal") for t in batch.tasks],
        owner=f"{socket.gethostname()}:{gone.pid}",
    )
    start = datetime.now(UTC) - timedelta(seconds=30)

    def success(task_id: str, output: str) -> AttemptRecord:
        return AttemptRecord(
            run_id=run_id,
            task_id=task_id,
            provider_id="mock",
            task_type=batch.task(task_id).type,
            attempt=1,
            outcome="success",
            started_at=start,
            finished_at=start + timedelta(milliseconds=300),
            cost_usd=0.001,
            latency_ms=300.0,
            output=output,
        )

    # Finished and marked: the root and the first level.
    done = ["plan", *(f"a{i}" for i in range(CHAINS))]
    ledger.record_attempts(success(t, f"recorded answer of {t}") for t in done)
    ledger.finish_tasks(
        run_id,
        [
            TaskOutcome(task_id=t, status="completed", provider_id="mock", output=f"recorded answer of {t}")
            for t in done
        ],
    )
    # Answered, committed, never marked: b3 (a task of the second level).
    sentinel = "answer committed just before the crash"
    ledger.record_attempts([success("b3", sentinel)])
    assert ledger.task_state(run_id, "b3").status == "pending"  # type: ignore[union-attr]
    before = _attempts(tmp_path / "ledger.db")

    out = _rerun(tmp_path, env, spec, mode)
    assert out["run"]["id"] == run_id
    attempts = _assert_each_task_charged_once(tmp_path / "ledger.db", out, run_id)
    b3 = next(t for t in out["tasks"] if t["id"] == "b3")
    assert b3["output"] == sentinel and b3["provider"] == "mock"
    assert [a for a in attempts if a[1] == "b3"] == [a for a in before if a[1] == "b3"]  # no call for it
    # The mock was called once for every other unfinished task, and for nothing else.
    new_calls = [a for a in attempts if a not in before]
    assert sorted(a[1] for a in new_calls) == sorted(t.id for t in batch.tasks if t.id not in {*done, "b3"})
    assert ledger.task_state(run_id, "c3").status == "completed"  # type: ignore[union-attr]  # b3's dependent
