"""Cancelling a batch through Prefect while `switchboard run` runs it in its own process: no provider call starts
once the cancel is seen (seen within a bound), the ledger, the flow run's state and the exit code agree, and
running the spec again completes the rest without charging anything twice."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
# From the cancel to the run seeing it: a read of its state every second (seen ~1.2 s on a quiet machine),
# plus a loaded machine's slack (7 s was seen with load 12 on 2 cores). Without the poll it is never seen.
SEEN_WITHIN_S = 15.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A started local Prefect server (Switchboard's managed one, on a free port), stopped after the module."""
    from flows import stop_server

    home = tmp_path_factory.mktemp("home")
    port = free_port()
    settings = {
        "SWITCHBOARD_HOME": str(home),
        "SWITCHBOARD_PREFECT_PORT": str(port),
        "PREFECT_HOME": str(tmp_path_factory.mktemp("prefect-home")),
    }
    yield settings
    stop_server(port, data_dir=home, prefect_home=Path(settings["PREFECT_HOME"]))


@pytest.fixture
def env(tmp_path: Path, server: dict[str, str]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in ("SWITCHBOARD_PREFECT", "PREFECT_API_URL")}
    return {**base, **server, "SWITCHBOARD_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}"}


def api_url(env: dict[str, str]) -> str:
    return f"http://127.0.0.1:{env['SWITCHBOARD_PREFECT_PORT']}/api"


def write_batch(tmp_path: Path, tasks: int) -> tuple[Path, Path, Path]:
    """A spec of independent tasks, a slow provider (400 ms a call, 2 at a time: 80 tasks take 16 s) and a fast one."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "name: cancel-me\ntasks:\n"
        + "".join(f"  - {{id: t{n:03d}, type: code_review, prompt: part {n}}}\n" for n in range(tasks))
    )
    slow = tmp_path / "slow.yaml"
    slow.write_text("providers:\n  mock: {type: local_mock, latency_ms: 400, max_concurrency: 2}\n")
    fast = tmp_path / "fast.yaml"
    fast.write_text("providers:\n  mock: {type: local_mock, latency_ms: 0}\n")
    return spec, slow, fast


def db(tmp_path: Path) -> sqlite3.Connection:
    return sqlite3.connect(tmp_path / "ledger.db")


def wait_for_calls(tmp_path: Path, calls: int, timeout: float = 120) -> str:
    """Wait until the run has a flow run and at least `calls` attempts recorded; its flow run id."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.2)
        try:
            row = db(tmp_path).execute("select flow_run_id from runs where flow_run_id is not null").fetchone()
            done = db(tmp_path).execute("select count(*) from provider_usage").fetchone()[0]
        except sqlite3.OperationalError:  # not created yet
            continue
        if row and done >= calls:
            return str(row[0])
    raise AssertionError("the run did not get going")


def cancel_in_prefect(env: dict[str, str], flow_run_id: str) -> datetime:
    """What the UI and `prefect flow-run cancel` do: propose Cancelling. Returns when it was accepted."""
    code = (
        "import sys; from uuid import UUID; from prefect import get_client;"
        "from prefect.client.schemas.objects import StateType; from prefect.states import State\n"
        "with get_client(sync_client=True) as c:\n"
        "    r = c.set_flow_run_state(UUID(sys.argv[1]), State(type=StateType.CANCELLING))\n"
        "    print(r.status.value)\n"
    )
    before = datetime.now(UTC)
    done = subprocess.run(
        [sys.executable, "-c", code, flow_run_id],
        env={**env, "PREFECT_API_URL": api_url(env)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip() == "ACCEPT", done.stderr[-2000:]
    return before


def flow_run_state(env: dict[str, str], flow_run_id: str) -> tuple[str, str, datetime]:
    """The flow run's state type and message, and when it entered Cancelling (its state history's timestamp)."""
    code = (
        "import sys; from uuid import UUID; from prefect import get_client\n"
        "with get_client(sync_client=True) as c:\n"
        "    s = c.read_flow_run(UUID(sys.argv[1])).state\n"
        "    h = c.read_flow_run_states(UUID(sys.argv[1]))\n"
        "    print(s.type.value); print(min(x.timestamp for x in h if x.type.value == 'CANCELLING').isoformat())\n"
        "    print(s.message)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, flow_run_id],
        env={**env, "PREFECT_API_URL": api_url(env)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    kind, cancelling, message = done.stdout.strip().split("\n", 2)
    return kind, message, datetime.fromisoformat(cancelling)


def seen_at(message: str) -> datetime:
    """When the run saw the cancel, from its Cancelled state's message `... (seen at <ISO time>); ...`."""
    return datetime.fromisoformat(message.split("(seen at ")[1].split(")")[0])


def check_cancelled_ledger(tmp_path: Path, cancelled_at: datetime, message: str) -> dict[str, int]:
    """The ledger after a cancel: run cancelled, every task completed or cancelled, no call started after the
    cancel was seen, seen within the bound after the flow run entered Cancelling (`cancelled_at`). Returns the
    attempt counts of the tasks that completed."""
    seen = seen_at(message)
    assert 0 <= (seen - cancelled_at).total_seconds() <= SEEN_WITHIN_S, (cancelled_at, seen)
    conn = db(tmp_path)
    assert conn.execute("select status from runs").fetchall() == [("cancelled",)]
    statuses = dict(conn.execute("select status, count(*) from tasks group by status").fetchall())
    assert set(statuses) == {"completed", "cancelled"} and statuses["cancelled"] > 0, statuses
    starts = [
        datetime.fromisoformat(s).replace(tzinfo=UTC) for (s,) in conn.execute("select started_at from provider_usage")
    ]
    assert max(starts) <= seen, (max(starts), seen)
    # Calls in flight when the cancel was seen were stopped and recorded cancelled, their tasks too.
    in_flight = conn.execute(
        "select u.task_id, t.status from provider_usage u join tasks t using (run_id, task_id)"
        " where u.outcome = 'cancelled'"
    ).fetchall()
    assert in_flight and {status for _, status in in_flight} == {"cancelled"}
    completed = conn.execute(
        "select u.task_id, count(*) from provider_usage u join tasks t using (run_id, task_id)"
        " where t.status = 'completed' group by u.task_id"
    )
    return dict(completed.fetchall())


def check_resumed_without_charging_twice(tmp_path: Path, before: dict[str, int], run_id: str) -> None:
    """After the rerun: the run completed, every task paid for exactly once, and the tasks that had completed
    before the cancel (`before`: their attempt counts) were not called again."""
    conn = db(tmp_path)
    assert conn.execute("select run_id, status from runs").fetchall() == [(run_id, "completed")]
    successes = dict(
        conn.execute("select task_id, count(*) from provider_usage where outcome = 'success' group by task_id")
    )
    total = conn.execute("select count(*) from tasks").fetchone()[0]
    assert len(successes) == total and set(successes.values()) == {1}
    after = dict(conn.execute("select task_id, count(*) from provider_usage group by task_id").fetchall())
    assert before and {t: after[t] for t in before} == before


@pytest.mark.parametrize(("mode", "runner"), [("per_node", "thread"), ("chunked", "thread"), ("chunked", "dask")])
def test_a_cancel_in_prefect_stops_switchboard_run_and_the_rerun_finishes_the_rest(
    env: dict[str, str], tmp_path: Path, mode: str, runner: str
) -> None:
    spec, slow, fast = write_batch(tmp_path, 80)
    if runner == "dask":  # the chunk runs in a Dask worker process, which must see the cancel by itself
        pytest.importorskip("prefect_dask")
        slow.write_text("runner: {kind: dask, dask_workers: 1}\n" + slow.read_text())
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "run", str(spec), "--providers", str(slow), "--mode", mode, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    flow_run_id = wait_for_calls(tmp_path, 8)
    cancelled_at = cancel_in_prefect(env, flow_run_id)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-3000:]
    assert "cancelled: the flow run was cancelled in Prefect" in stderr
    assert "Traceback" not in stderr and "Finished in state Cancelled" not in stderr, stderr[-3000:]
    out = json.loads(stdout)
    assert out["run"]["status"] == "cancelled" and out["run"]["flow_run_id"] == flow_run_id
    assert {t["status"] for t in out["tasks"]} == {"completed", "cancelled"}
    assert out["totals"]["cancelled"] == sum(1 for t in out["tasks"] if t["status"] == "cancelled") > 0

    kind, message, cancelling_at = flow_run_state(env, flow_run_id)
    assert kind == "CANCELLED", message
    assert cancelling_at >= cancelled_at
    attempts = check_cancelled_ledger(tmp_path, cancelling_at, message)

    again = subprocess.run(
        [sys.executable, "-m", "cli", "run", str(spec), "--providers", str(fast), "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    resumed = json.loads(again.stdout)
    assert resumed["run"]["id"] == out["run"]["id"] and resumed["totals"]["completed"] == 80
    check_resumed_without_charging_twice(tmp_path, attempts, out["run"]["id"])


def test_switchboard_cancel_from_another_terminal_stops_the_run_and_prints_its_summary(
    env: dict[str, str], tmp_path: Path
) -> None:
    spec, slow, _ = write_batch(tmp_path, 80)
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "run", str(spec), "--providers", str(slow), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    flow_run_id = wait_for_calls(tmp_path, 6)
    run_id = db(tmp_path).execute("select run_id from runs").fetchone()[0]
    cancelled_at = datetime.now(UTC)
    cancel = subprocess.run(
        [sys.executable, "-m", "cli", "cancel", run_id[:-2], "--json"],  # a prefix is enough
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    stdout, stderr = proc.communicate(timeout=120)
    assert cancel.returncode == 0, cancel.stderr[-3000:]
    assert f"cancel requested: run {run_id} (flow run {flow_run_id})" in cancel.stderr
    assert json.loads(cancel.stdout)["run"]["status"] == "cancelled"
    assert proc.returncode == 130, stderr[-3000:]
    assert json.loads(stdout)["run"]["status"] == "cancelled"
    kind, message, cancelling_at = flow_run_state(env, flow_run_id)
    assert kind == "CANCELLED", message
    assert cancelling_at >= cancelled_at
    check_cancelled_ledger(tmp_path, cancelling_at, message)

    again = subprocess.run(
        [sys.executable, "-m", "cli", "cancel", run_id],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert again.returncode == 0 and "already cancelled" in again.stderr


def test_a_cancel_kills_the_claude_cli_children_in_flight_and_records_them_cancelled(
    env: dict[str, str], tmp_path: Path
) -> None:
    from tests.fakes.claude_harness import FakeCli, wait_dead

    fake = FakeCli(tmp_path / "fake")
    # Each call runs a long agent session that started a tool of its own (a grandchild in its process group).
    fake.scenario({"default": {"kind": "sleep", "sleep_s": 120, "spawn_grandchild": True}})
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "name: agents\ntasks:\n" + "".join(f"  - {{id: a{n}, type: code_review, prompt: p{n}}}\n" for n in range(4))
    )
    providers = tmp_path / "claude.yaml"
    providers.write_text("providers:\n  claude: {type: claude_cli, max_concurrency: 2, timeout_s: 600}\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "run", str(spec), "--providers", str(providers), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**env, **fake.env()},
        cwd=ROOT,
    )
    deadline = time.monotonic() + 120
    while len(fake.grandchildren()) < 2 and time.monotonic() < deadline:  # two sessions in flight
        time.sleep(0.2)
    assert len(fake.grandchildren()) == 2, fake.records()
    flow_run_id = str(db(tmp_path).execute("select flow_run_id from runs").fetchone()[0])
    cancel_in_prefect(env, flow_run_id)
    stdout, stderr = proc.communicate(timeout=60)  # not the 120 s the sessions would take
    assert proc.returncode == 130, stderr[-3000:]
    sessions = [c["pid"] for c in fake.calls()]
    assert len(sessions) == 2  # the other two tasks never started a session
    assert all(wait_dead(pid) for pid in sessions + fake.grandchildren())  # process groups killed
    out = json.loads(stdout)
    assert out["run"]["status"] == "cancelled"
    attempts = [a for t in out["tasks"] for a in t["attempts"]]
    assert [a["outcome"] for a in attempts] == ["cancelled", "cancelled"]
    assert {t["status"] for t in out["tasks"]} == {"cancelled"}
