"""process_batch end to end under Prefect's test harness, with mock providers and a SQLite ledger."""

from __future__ import annotations

from pathlib import Path

import pytest

from batches import parse_spec, run_summary, start_run
from ledger import Ledger

pytestmark = pytest.mark.usefixtures("prefect_harness")

DAG = {
    "name": "dag",
    "team": "qa",
    "tasks": [
        {"id": "plan", "type": "code_analysis", "prompt": "plan"},
        {"id": "left", "type": "code_review", "prompt": "left", "depends_on": ["plan"]},
        {"id": "right", "type": "bug_fix", "prompt": "right", "depends_on": ["plan"]},
        {"id": "merge", "type": "summarization", "prompt": "merge", "depends_on": ["left", "right"]},
        {"id": "after", "type": "summarization", "prompt": "after", "depends_on": ["merge"]},
    ],
}


def _providers(tmp_path: Path, body: str) -> str:
    path = tmp_path / "providers.yaml"
    path.write_text(body)
    return str(path)


def test_dag_runs_with_failover_and_passes_upstream_outputs(tmp_path: Path, ledger_url: str) -> None:
    from flows.batch import process_batch

    providers = _providers(
        tmp_path,
        "providers:\n  flaky: {type: local_mock, priority: 1, latency_ms: 0, failure_rate: 1.0}\n"
        "  steady: {type: local_mock, priority: 2, latency_ms: 0}\n",
    )
    result = process_batch(spec=parse_spec(DAG, "dag"), providers=providers)
    assert result["status"] == "completed"
    ledger = Ledger(url=ledger_url)
    summary = run_summary(ledger, result["run_id"])
    assert summary.run.flow_run_id
    assert [t.provider for t in summary.tasks] == ["steady"] * 5
    assert summary.totals.failovers == 5
    merge = next(t for t in summary.tasks if t.id == "merge")
    assert merge.output is not None and "Builds on left, right" in merge.output
    # exactly one ledger row per attempt: two per task (flaky, then steady)
    assert len(ledger.attempts(result["run_id"])) == 10


def _task_run_states(flow_run_id: object, expected: int = 5, timeout: float = 30.0) -> dict[str, str]:
    """Task run name -> final state name, as the Prefect UI shows them (the server records them asynchronously)."""
    import time

    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
            final = {run.name: run.state.name for run in runs if run.state is not None and run.state.is_final()}
            if len(final) >= expected or time.monotonic() > deadline:
                return final
            time.sleep(0.3)


def test_failed_task_skips_its_dependents_only(tmp_path: Path, ledger_url: str) -> None:
    from flows.batch import process_batch

    providers = _providers(
        tmp_path,
        "providers:\n  reviewer: {type: local_mock, latency_ms: 0, "
        "capabilities: [code_analysis, code_review, summarization]}\n"
        "  broken: {type: local_mock, latency_ms: 0, capabilities: [bug_fix], failure_rate: 1.0}\n",
    )
    state = process_batch(spec=parse_spec(DAG, "dag"), providers=providers, return_state=True)
    # The flow run itself ends Failed (the Prefect UI and automations see it), with the totals as its data.
    assert state.is_failed() and "1 failed, 2 skipped of 5 tasks" in (state.message or "")
    result = state.result(raise_on_failure=False)
    ledger = Ledger(url=ledger_url)
    states = {t: s.status for t, s in ledger.task_states(result["run_id"]).items()}
    assert _task_run_states(state.state_details.flow_run_id) == {
        "plan": "Completed",
        "left": "Completed",
        "right": "Failed",
        "merge": "Skipped",
        "after": "Skipped",
    }
    assert states == {
        "plan": "completed",
        "left": "completed",
        "right": "failed",
        "merge": "skipped",
        "after": "skipped",
    }
    assert result["status"] == "failed"
    # skipped tasks were never sent to a provider
    assert {a.task_id for a in ledger.attempts(result["run_id"])} == {"plan", "left", "right"}
    assert "upstream not completed (right failed)" in (ledger.task_state(result["run_id"], "merge").error or "")


def test_rerun_of_a_failed_spec_resumes_and_only_runs_unfinished_tasks(tmp_path: Path, ledger_url: str) -> None:
    from flows.batch import process_batch

    spec_path = tmp_path / "dag.yaml"
    import yaml

    spec_path.write_text(yaml.safe_dump(DAG))
    broken = _providers(
        tmp_path, "providers:\n  m: {type: local_mock, latency_ms: 0, capabilities: [code_analysis, code_review]}\n"
    )
    first = process_batch(spec=str(spec_path), providers=broken, return_state=True).result(raise_on_failure=False)
    assert first["status"] == "failed"
    ledger = Ledger(url=ledger_url)
    done_before = {a.task_id: a.attempt for a in ledger.attempts(first["run_id"])}

    healthy = tmp_path / "healthy.yaml"
    healthy.write_text("providers:\n  m: {type: local_mock, latency_ms: 0}\n")
    second = process_batch(spec=str(spec_path), providers=str(healthy))
    assert second["run_id"] == first["run_id"] and second["status"] == "completed"
    attempts = ledger.attempts(first["run_id"])
    # plan and left were not executed again: still exactly one (successful) attempt each
    assert sorted(a.task_id for a in attempts if a.task_id in done_before) == ["left", "plan"]
    assert all(a.outcome == "success" for a in attempts)


def test_a_deployment_run_honours_the_providers_files_runner_through_a_subflow(tmp_path: Path, ledger_url: str) -> None:
    from prefect import get_client

    from flows.batch import process_batch

    providers = _providers(tmp_path, "runner: {max_workers: 3}\nproviders:\n  m: {type: local_mock, latency_ms: 0}\n")
    # Called like a worker calls it: with the decorator's 16-thread runner, not run_batch_flow's.
    state = process_batch(spec=parse_spec(DAG, "dag-runner"), providers=providers, return_state=True)
    assert state.is_completed()
    result = state.result()
    run = Ledger(url=ledger_url).get_run(result["run_id"])
    assert run is not None and result["status"] == "completed"
    outer = state.state_details.flow_run_id
    assert run.flow_run_id and run.flow_run_id != str(outer)  # the batch ran in a subflow ...
    with get_client(sync_client=True) as client:
        inner = client.read_flow_run(run.flow_run_id)
    assert inner.parent_task_run_id is not None  # ... of the deployment's flow run


def test_resuming_marks_the_killed_runs_flow_run_crashed(tmp_path: Path, ledger_url: str) -> None:
    from prefect import get_client
    from prefect.states import Running

    from flows.batch import process_batch, run_batch_flow
    from routing import load_config

    spec = parse_spec({**DAG, "name": "dag-killed"}, "dag")
    providers = _providers(tmp_path, "providers:\n  m: {type: local_mock, latency_ms: 0}\n")
    ledger = Ledger(url=ledger_url)

    run_id, _ = start_run(ledger, spec, "priority_based")
    with get_client(sync_client=True) as client:
        killed = client.create_flow_run(process_batch, state=Running())  # a flow run whose process died
    ledger.set_flow_run_id(run_id, str(killed.id))
    ledger.finish_run(run_id, "interrupted")

    result = run_batch_flow(load_config(providers), spec=spec, providers=providers)
    assert result["run_id"] == run_id and result["status"] == "completed"
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(killed.id).state
    assert state is not None and state.is_crashed() and run_id in (state.message or "")
