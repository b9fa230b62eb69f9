"""prefect.yaml end to end: a real server, `prefect deploy`, runs triggered by CLI and by submit_batch, a worker.

One server for the module (free port, temporary Prefect home); the worker runs `--run-once` per triggered run.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from flows import server
from tests.flows.prefect_kit import (
    PREFECT,
    ROOT,
    SWITCHBOARD,
    final_flow_run,
    prefect_client,
    prefect_stack,
    run_ok,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A started server with the project's deployments on it."""
    tmp = tmp_path_factory.mktemp("deployments")
    # usage_report's flow file comes from another change; deploy what exists.
    has_report = (ROOT / "flows" / "report_flow.py").exists()
    names = ["--all"] if has_report else ["--name", "process-batch", "--name", "provider-health"]
    with prefect_stack(tmp, ledger_url=f"sqlite:///{tmp / 'ledger.db'}", deploy=names) as prefect:
        yield {"env": prefect.env, "api_url": prefect.api_url, "ledger": tmp / "ledger.db", "has_report": has_report}


def _run_worker_once(env: dict[str, str]) -> str:
    began = time.monotonic()
    out = run_ok([*PREFECT, "worker", "start", "--pool", server.POOL_NAME, "--run-once"], env, timeout=300)
    print(f"worker --run-once: {time.monotonic() - began:.1f} s")
    return out.stdout + out.stderr


def _artifacts(api_url: str, flow_run_id: str) -> list[Any]:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with prefect_client(api_url) as client:
        return client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(flow_run_id)])))


def _ledger_tasks(path: Path, flow_run_id: str) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as db:
        return db.execute(
            "select t.task_id, t.status from tasks t join runs r on r.run_id = t.run_id where r.flow_run_id = ?",
            (flow_run_id,),
        ).fetchall()


def test_deployments_are_stored_with_schedules_pull_step_and_typed_parameters(stack: dict[str, Any]) -> None:
    with prefect_client(stack["api_url"]) as client:
        batch = client.read_deployment_by_name("process-batch/process-batch")
        health = client.read_deployment_by_name("provider-health/provider-health")
        pool = client.read_work_pool(server.POOL_NAME)
        report = client.read_deployment_by_name("usage-report/usage-report-daily") if stack["has_report"] else None
    assert pool.type == "process"
    assert batch.work_pool_name == health.work_pool_name == server.POOL_NAME
    # The pull step points workers at this checkout, wherever it is.
    assert batch.pull_steps == [{"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}]
    spec_schema = batch.parameter_openapi_schema["properties"]["spec"]
    assert any("BatchSpec" in str(option) for option in spec_schema["anyOf"])  # the UI renders a form for it
    assert "BatchSpec" in batch.parameter_openapi_schema["definitions"]
    assert [s.schedule.interval.total_seconds() for s in health.schedules] == [300]
    if report is not None:
        assert [(s.schedule.cron, s.schedule.timezone) for s in report.schedules] == [("15 0 * * *", "UTC")]
        # just after midnight UTC, over the last full day
        assert report.parameters == {"since": "1d", "until": "today"}


def test_deployment_run_from_the_cli_completes_on_a_worker(stack: dict[str, Any]) -> None:
    spec = ROOT / "examples" / "pr-review.yaml"
    failing_first = ROOT / "examples" / "providers-failover.yaml"  # its top provider always fails
    triggered = run_ok(
        [
            *PREFECT,
            "deployment",
            "run",
            "process-batch/process-batch",
            "--param",
            f"spec={spec}",
            "--param",
            f"providers={failing_first}",
        ],
        stack["env"],
    )
    match = re.search(r"UUID: ([0-9a-f-]{36})", triggered.stdout)
    assert match, triggered.stdout
    flow_run_id = match.group(1)

    log = _run_worker_once(stack["env"])
    flow_run = final_flow_run(stack["api_url"], flow_run_id, timeout=30)
    assert flow_run.state.is_completed(), log[-3000:]
    assert flow_run.parameters == {"spec": str(spec), "providers": str(failing_first)}

    tasks = _ledger_tasks(stack["ledger"], flow_run_id)
    assert len(tasks) == 12 and {status for _, status in tasks} == {"completed"}
    markdown = _check_run_artifacts(stack, flow_run_id, {task for task, _ in tasks})
    # The failovers, each with its chain of attempts: flaky failed, steady answered.
    assert "flaky: unavailable → steady: success" in markdown
    assert "No failovers" not in markdown


def _check_run_artifacts(stack: dict[str, Any], flow_run_id: str, task_ids: set[str]) -> str:
    """The three artifacts a worker-run flow publishes: the table, the failovers (markdown) and the progress bar
    at 100, each keyed by the ledger's run id. Returns the failovers' markdown."""
    run_id = _ledger_run_id(stack["ledger"], flow_run_id).lower()
    artifacts = {a.key: a for a in _artifacts(stack["api_url"], flow_run_id) if a.key}
    table = artifacts[f"switchboard-{run_id}"]
    assert table.type == "table"
    rows = table.data if isinstance(table.data, list) else json.loads(table.data)
    assert {row["task"] for row in rows} == task_ids and {row["status"] for row in rows} == {"completed"}
    failovers = artifacts[f"switchboard-failovers-{run_id}"]
    assert failovers.type == "markdown" and isinstance(failovers.data, str) and failovers.data.strip()
    progress = artifacts[f"switchboard-progress-{run_id}"]
    assert progress.type == "progress" and float(progress.data) == 100.0
    return failovers.data


def _ledger_run_id(path: Path, flow_run_id: str) -> str:
    with sqlite3.connect(path) as db:
        rows = db.execute("select run_id from runs where flow_run_id = ?", (flow_run_id,)).fetchall()
    assert len(rows) == 1, rows
    return str(rows[0][0])


def test_submit_batch_triggers_the_deployment(stack: dict[str, Any], tmp_path: Path) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.triggers import submit_batch

    providers = tmp_path / "providers.yaml"
    providers.write_text("providers:\n  fast: {type: local_mock, latency_ms: 0}\n")
    # Several roots at once on the worker (per-node mode): eight independent tasks, then one that needs them all.
    roots = [f"root-{n}" for n in range(8)]
    spec = {
        "name": f"submitted-{tmp_path.name}",
        "tasks": [
            *({"id": root, "type": "code_analysis", "prompt": f"look at part {root}"} for root in roots),
            {"id": "do", "type": "feature", "prompt": "do it", "depends_on": roots},
        ],
    }
    began = time.monotonic()
    # The session's Prefect test harness may be active in this process; talk to this module's server.
    with temporary_settings(updates={PREFECT_API_URL: stack["api_url"]}):
        flow_run_id = submit_batch(spec, providers=providers)
    print(f"submit_batch returned in {time.monotonic() - began:.2f} s")
    with prefect_client(stack["api_url"]) as client:
        assert client.read_flow_run(UUID(flow_run_id)).state.is_scheduled()

    log = _run_worker_once(stack["env"])
    flow_run = final_flow_run(stack["api_url"], flow_run_id, timeout=30)
    assert flow_run.state.is_completed(), log[-3000:]
    assert flow_run.parameters["spec"]["name"] == spec["name"]
    assert flow_run.parameters["providers"] == str(providers)
    assert sorted(_ledger_tasks(stack["ledger"], flow_run_id)) == sorted((t, "completed") for t in [*roots, "do"])
    _check_run_artifacts(stack, flow_run_id, {*roots, "do"})


def test_switchboard_run_with_deployment_submits_the_checked_spec(stack: dict[str, Any]) -> None:
    spec = ROOT / "examples" / "pr-review.yaml"
    done = run_ok(
        [
            sys.executable,
            "-m",
            "cli",
            "run",
            "examples/pr-review.yaml",
            "--deployment",
            "process-batch/process-batch",
            "--json",
        ],
        {k: v for k, v in stack["env"].items() if k != "SWITCHBOARD_PREFECT"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout)
    assert out["deployment"] == "process-batch/process-batch"
    assert out["ui_url"].endswith(f"/runs/flow-run/{out['flow_run_id']}")
    with prefect_client(stack["api_url"]) as client:
        flow_run = client.read_flow_run(UUID(out["flow_run_id"]))
        assert flow_run.state.is_scheduled()
        assert flow_run.parameters["spec"] == str(spec)  # made absolute, so the worker reads the same file
        client.delete_flow_run(flow_run.id)  # leave nothing for another test's worker to pick up
    bad = subprocess.run(
        [sys.executable, "-m", "cli", "run", "missing.yaml", "--deployment", "process-batch/process-batch"],
        capture_output=True,
        text=True,
        env=stack["env"],
        timeout=120,
        cwd=ROOT,
    )
    assert bad.returncode == 2 and "missing.yaml" in bad.stderr


def _flow_run_count(api_url: str) -> int:
    with prefect_client(api_url) as client:
        return len(client.read_flow_runs(limit=200))


def test_switchboard_run_with_deployment_passes_fresh_and_mode(stack: dict[str, Any]) -> None:
    """--fresh and --mode were dropped on the way to the deployment; they are process_batch's parameters."""
    done = run_ok(
        [
            *SWITCHBOARD,
            "run",
            "examples/pr-review.yaml",
            "--deployment",
            "process-batch/process-batch",
            "--fresh",
            "--mode",
            "chunked",
            "--json",
        ],
        stack["env"],
    )
    out = json.loads(done.stdout)
    with prefect_client(stack["api_url"]) as client:
        flow_run = client.read_flow_run(UUID(out["flow_run_id"]))
        client.delete_flow_run(flow_run.id)  # leave nothing for another test's worker to pick up
    assert flow_run.parameters["fresh"] is True and flow_run.parameters["mode"] == "chunked"


def test_switchboard_run_with_an_unknown_deployment_exits_2_and_creates_nothing(stack: dict[str, Any]) -> None:
    """It printed a raw `ObjectNotFound: None` traceback."""
    before = _flow_run_count(stack["api_url"])
    bad = subprocess.run(
        [*SWITCHBOARD, "run", "examples/pr-review.yaml", "--deployment", "process-batch/nightly"],
        capture_output=True,
        text=True,
        env=stack["env"],
        timeout=120,
        cwd=ROOT,
    )
    assert bad.returncode == 2, bad.stderr[-3000:]
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in bad.stderr, bad.stderr[-3000:]
    assert f"no deployment 'process-batch/nightly' on {stack['api_url']}" in lines[0]
    assert "prefect --no-prompt deploy --all" in lines[0]
    assert bad.stdout == ""
    assert _flow_run_count(stack["api_url"]) == before
