"""A batch killed mid-way (SIGKILL, no cleanup at all) and run again finishes every task exactly once.

The ledger decides what finished: the re-run resumes the same run, never calls a provider again for a task
that completed, and never records a second charge for one.
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
from pathlib import Path
from typing import Any

import pytest

from flows import server

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "examples" / "pr-review.yaml"
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real server: the embedded default for `switchboard run` (ephemeral mode would lose task history)."""
    tmp = tmp_path_factory.mktemp("crash-server")
    port = _free_port()
    dirs = {"data_dir": tmp / "switchboard", "prefect_home": tmp / "prefect-home"}
    info = server.start_server(port, **dirs)
    try:
        yield info.api_url
    finally:
        server.stop_server(port, **dirs)


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


def _providers(tmp_path: Path, name: str, latency_ms: int, chunk_threshold: int) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"runner: {{chunk_threshold: {chunk_threshold}}}\n"
        f"providers:\n  mock: {{type: local_mock, latency_ms: {latency_ms}}}\n"
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
        "select run_id, task_id, attempt, provider_id, outcome, idempotency_key, started_at, finished_at, cost_usd "
        "from provider_usage order by task_id, attempt",
    )


# The 12-task example runs per node by default; a chunk threshold of 1 forces chunked mode (one Prefect
# task per DAG level, tasks routed concurrently inside it).
@pytest.mark.parametrize("chunk_threshold", [200, 1], ids=["per-node", "chunked"])
def test_killed_run_resumes_and_completes_every_task_once(
    tmp_path: Path, env: dict[str, str], chunk_threshold: int
) -> None:
    db = tmp_path / "ledger.db"
    slow = _providers(tmp_path, "slow", 1500, chunk_threshold)
    command = [sys.executable, "-m", "flows", "run", str(SPEC), "--json"]
    first = subprocess.Popen(
        [*command, "--providers", str(slow)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        completed: list[tuple[Any, ...]] = []
        while time.monotonic() < deadline and first.poll() is None:
            completed = _query(db, "select task_id from tasks where status = 'completed'")
            if completed:
                break
            time.sleep(0.05)
        assert completed, f"no task completed before the deadline: {first.stderr.read() if first.stderr else ''}"
        first.send_signal(signal.SIGKILL)  # a real crash: no handler, no cleanup, no flush
        first.wait(30)
    finally:
        if first.poll() is None:
            first.kill()
        if first.stderr:
            first.stderr.close()
    assert first.returncode == -signal.SIGKILL

    runs = _query(db, "select run_id, status from runs")
    assert len(runs) == 1 and runs[0][1] == "running", runs  # the kill left it unfinished
    run_id = runs[0][0]
    done_before = {row[0] for row in _query(db, "select task_id from tasks where status = 'completed'")}
    assert 0 < len(done_before) < 12
    attempts_before = _attempts(db)
    print(f"killed with {len(done_before)}/12 tasks completed and {len(attempts_before)} attempt rows")

    fast = _providers(tmp_path, "fast", 0, chunk_threshold)
    rerun = subprocess.run(
        [*command, "--providers", str(fast)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    out = json.loads(rerun.stdout)
    assert out["run"]["id"] == run_id  # resumed, not a new run
    assert "resuming" in rerun.stderr
    assert out["totals"]["completed"] == 12 and {t["status"] for t in out["tasks"]} == {"completed"}

    attempts_after = _attempts(db)
    # Finished tasks were not executed again: their attempt rows are exactly what they were.
    assert [a for a in attempts_after if a[1] in done_before] == [a for a in attempts_before if a[1] in done_before]
    successes: dict[str, int] = {}
    for attempt in attempts_after:
        if attempt[4] == "success":
            successes[attempt[1]] = successes.get(attempt[1], 0) + 1
    assert successes == {t["id"]: 1 for t in out["tasks"]}  # one charge per task, none twice
    keys = [a[5] for a in attempts_after]
    assert len(keys) == len(set(keys))
    assert {a[0] for a in attempts_after} == {run_id}
    assert len(_query(db, "select run_id from runs")) == 1
