"""Batches running as a deployment on a real Prefect worker: followed from a terminal with `switchboard watch` to
their end, and cancelled through Prefect's API (the worker's kill signal told apart from any other SIGTERM, no
provider call started once the cancel is seen, the ledger and the flow run's state agree, and a rerun of the spec
finishes the rest without charging anything twice)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_cancel import (
    SEEN_WITHIN_S,
    check_resumed_without_charging_twice,
    db,
    seen_at,
    wait_for_calls,
    write_batch,
)
from tests.flows.prefect_kit import (
    ROOT,
    SWITCHBOARD,
    final_flow_run,
    prefect_client,
    prefect_stack,
    prefect_worker,
    run_ok,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A started server with the process-batch deployment, and a long-running worker on its pool."""
    tmp = tmp_path_factory.mktemp("worker-cancel")
    log = tmp / "worker.log"
    with prefect_stack(tmp, ledger_url=f"sqlite:///{tmp / 'ledger.db'}") as prefect, prefect_worker(prefect.env, log):
        yield {"env": prefect.env, "api_url": prefect.api_url, "tmp": tmp, "worker_log": log}


def _watch(flow_run_id: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*SWITCHBOARD, "watch", flow_run_id, "--json", "--interval", "0.5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


def test_a_cancel_in_prefect_stops_a_deployment_run_on_a_worker(stack: dict[str, Any], tmp_path: Path) -> None:
    from uuid import UUID

    from prefect.client.schemas.objects import StateType
    from prefect.states import State

    env, ledger_dir = stack["env"], stack["tmp"]  # the worker's ledger is the one its environment names
    spec, slow, fast = write_batch(tmp_path, 80)
    deployment = ["--deployment", "process-batch/process-batch", "--json"]
    submitted = run_ok([*SWITCHBOARD, "run", str(spec), "--providers", str(slow), *deployment], env)
    flow_run_id = json.loads(submitted.stdout)["flow_run_id"]
    watcher = _watch(flow_run_id, env)
    try:
        assert wait_for_calls(ledger_dir, 6, timeout=180) == flow_run_id
    except AssertionError:
        raise AssertionError(stack["worker_log"].read_text()[-5000:]) from None
    with prefect_client(stack["api_url"]) as client:
        answer = client.set_flow_run_state(UUID(flow_run_id), State(type=StateType.CANCELLING))
        assert answer.status.value == "ACCEPT"
        history = client.read_flow_run_states(UUID(flow_run_id))
    cancelling_at = min(s.timestamp for s in history if s.type == StateType.CANCELLING)

    final = final_flow_run(stack["api_url"], flow_run_id, timeout=120).state
    assert final.type == StateType.CANCELLED, (final, stack["worker_log"].read_text()[-3000:])
    with prefect_client(stack["api_url"]) as client:
        history = client.read_flow_run_states(UUID(flow_run_id))
    ours = [s for s in history if s.message and "(seen at " in s.message]
    assert ours, [(s.type, s.message) for s in history]
    seen = seen_at(ours[0].message)
    assert 0 <= (seen - cancelling_at).total_seconds() <= SEEN_WITHIN_S

    conn = db(ledger_dir)
    deadline = time.monotonic() + 30
    while conn.execute("select status from runs").fetchone()[0] == "running" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert conn.execute("select status from runs").fetchall() == [("cancelled",)]
    statuses = dict(conn.execute("select status, count(*) from tasks group by status").fetchall())
    assert set(statuses) == {"completed", "cancelled"}, statuses
    # Whichever saw the cancel first, the worker's kill (SIGTERM with the flow run Cancelling) or the flow's own
    # read of its state, the tasks say so.
    errors = {e for (e,) in conn.execute("select error from tasks where status = 'cancelled'")}
    assert errors <= {
        "cancelled (flow run cancelled in Prefect)",
        "cancelled (flow run cancelled in Prefect; stopped by the worker's signal)",
    }, errors
    starts = [
        datetime.fromisoformat(s).replace(tzinfo=UTC) for (s,) in conn.execute("select started_at from provider_usage")
    ]
    assert max(starts) <= seen
    assert conn.execute("select count(*) from provider_usage where outcome = 'cancelled'").fetchone()[0] > 0
    completed = dict(
        conn.execute(
            "select u.task_id, count(*) from provider_usage u join tasks t using (run_id, task_id)"
            " where t.status = 'completed' group by u.task_id"
        ).fetchall()
    )
    run_id = conn.execute("select run_id from runs").fetchone()[0]
    watched, notes = watcher.communicate(timeout=60)
    assert watcher.returncode == 130, notes[-3000:]  # the watch ends with the run, as `switchboard run` would
    assert json.loads(watched)["run"]["status"] == "cancelled"

    # The rest, here: the same spec resumes the cancelled run and charges nothing twice.
    again = subprocess.run(
        [*SWITCHBOARD, "run", str(spec), "--providers", str(fast), "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout)["run"]["id"] == run_id
    check_resumed_without_charging_twice(ledger_dir, completed, run_id)


# After the cancel test: that one expects the worker's ledger to hold its run alone.
def test_watch_follows_a_deployment_run_on_a_worker_to_its_end(stack: dict[str, Any], tmp_path: Path) -> None:
    env = stack["env"]
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "name: watched\ntasks:\n"
        + "".join(f"  - {{id: w{n:02d}, type: code_review, prompt: part {n}}}\n" for n in range(40))
    )
    providers = tmp_path / "flaky.yaml"
    providers.write_text(
        "providers:\n"
        "  flaky: {type: local_mock, priority: 1, latency_ms: 200, failure_rate: 0.3, max_concurrency: 2}\n"
        "  steady: {type: local_mock, priority: 2, latency_ms: 200, max_concurrency: 2}\n"
        "circuit: {failure_threshold: 1000, error_rate_threshold: 1.0}\n"
    )
    deployment = ["--deployment", "process-batch/process-batch", "--json"]
    submitted = run_ok([*SWITCHBOARD, "run", str(spec), "--providers", str(providers), *deployment], env)
    flow_run_id = json.loads(submitted.stdout)["flow_run_id"]
    watcher = _watch(flow_run_id, env)  # at once: the worker has not picked the run up yet
    watched, notes = watcher.communicate(timeout=300)
    assert watcher.returncode == 0, notes[-3000:]
    out = json.loads(watched)
    assert out["run"]["flow_run_id"] == flow_run_id and out["run"]["status"] == "completed"
    assert out["totals"]["completed"] == 40 and out["totals"]["failovers"] > 0
    # Every failover was shown as it happened (or counted as already done when the watch caught up).
    lines = notes.splitlines()
    shown = [line for line in lines if line.startswith("failover: ")]
    so_far = next((int(line.split()[0]) for line in lines if line.endswith("failovers and rotations so far")), 0)
    assert len(shown) + so_far == out["totals"]["failovers"], notes
    expected = {
        f"failover: {t['id']} flaky: {t['attempts'][0]['outcome']} → steady"
        for t in out["tasks"]
        if len(t["attempts"]) > 1
    }
    assert set(shown) <= expected
    assert any(line.startswith(f"following run {out['run']['id']} (watched, 40 tasks)") for line in lines), notes
