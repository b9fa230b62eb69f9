"""The Python trigger API: run_batch runs in process; submit_batch validates locally before it reaches a server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from batches import SpecError, parse_spec
from flows import server, triggers
from ledger import Ledger
from routing import ConfigError
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
INLINE = {
    "name": "inline-trigger",
    "tasks": [
        {"id": "a", "type": "code_analysis", "prompt": "map it"},
        {"id": "b", "type": "summarization", "prompt": "sum it", "depends_on": ["a"]},
    ],
}
FAST = "providers:\n  fast: {type: local_mock, latency_ms: 0}\n"


@pytest.fixture
def providers_file(tmp_path: Path) -> Path:
    path = tmp_path / "providers.yaml"
    path.write_text(FAST)
    return path


@pytest.fixture
def no_server(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Replace run_deployment: records what would have been sent."""
    import prefect.deployments

    sent: list[dict[str, Any]] = []

    class _FlowRun:
        id = "00000000-0000-0000-0000-000000000042"

    def fake_run_deployment(**kwargs: Any) -> _FlowRun:
        sent.append(kwargs)
        return _FlowRun()

    monkeypatch.setattr(prefect.deployments, "run_deployment", fake_run_deployment)
    return sent


@pytest.mark.usefixtures("prefect_harness")
def test_run_batch_runs_inline_and_path_specs_in_process(
    ledger_url: str, providers_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = triggers.run_batch(INLINE, providers=providers_file)
    assert result["status"] == "completed" and result["totals"]["completed"] == 2
    ledger = Ledger(url=ledger_url)
    assert {s.status for s in ledger.task_states(result["run_id"]).values()} == {"completed"}
    assert ledger.get_run(result["run_id"]).flow_run_id  # type: ignore[union-attr]

    monkeypatch.chdir(ROOT)  # a relative path is resolved against the caller's directory
    from_path = triggers.run_batch(
        Path("examples/pr-review.yaml"), providers=str(providers_file), strategy="round_robin"
    )
    assert from_path["status"] == "completed" and from_path["totals"]["completed"] == 12
    assert ledger.get_run(from_path["run_id"]).strategy == "round_robin"  # type: ignore[union-attr]


def test_submit_batch_sends_absolute_paths_and_inline_specs(
    no_server: list[dict[str, Any]], providers_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    flow_run_id = triggers.submit_batch("examples/pr-review.yaml", providers=providers_file)
    assert flow_run_id == "00000000-0000-0000-0000-000000000042"
    assert no_server[0] == {
        "name": "process-batch/process-batch",
        "parameters": {"spec": str(ROOT / "examples" / "pr-review.yaml"), "providers": str(providers_file)},
        "timeout": 0,
    }
    triggers.submit_batch(parse_spec(INLINE, "inline"), strategy="cost_based", fresh=True, deployment="x/y")
    sent = no_server[1]
    assert sent["name"] == "x/y"
    assert sent["parameters"]["spec"]["name"] == "inline-trigger"
    assert sent["parameters"]["strategy"] == "cost_based" and sent["parameters"]["fresh"] is True


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("does/not/exist.yaml", "file not found"),
        ({"name": "x", "tasks": []}, "tasks"),
        (
            {
                "name": "cyclic",
                "tasks": [
                    {"id": "a", "type": "t", "prompt": "p", "depends_on": ["b"]},
                    {"id": "b", "type": "t", "prompt": "p", "depends_on": ["a"]},
                ],
            },
            "a -> b -> a",
        ),
        ({"name": "x", "tasks": [{"id": "a", "type": "t", "prompt": "p", "depends_on": ["ghost"]}]}, "ghost"),
        ({"name": "x", "tasks": [{"id": "a", "type": "t", "prompt": "p", "colour": "red"}]}, "colour"),
    ],
)
def test_submit_batch_rejects_bad_specs_before_reaching_the_server(
    no_server: list[dict[str, Any]], spec: Any, message: str
) -> None:
    with pytest.raises(SpecError, match=message):
        triggers.submit_batch(spec)
    assert no_server == []


def test_submit_batch_rejects_bad_providers_and_strategy(no_server: list[dict[str, Any]], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("providers:\n  m: {type: local_mock, failure_rate: 2}\n")
    with pytest.raises(ConfigError, match="failure_rate"):
        triggers.submit_batch(INLINE, providers=bad)
    with pytest.raises(ValueError, match="unknown strategy"):
        triggers.submit_batch(INLINE, strategy="fastest")
    with pytest.raises(TypeError):
        triggers.submit_batch(42)  # type: ignore[arg-type]
    assert no_server == []


RUN_BATCH_SCRIPT = """
import json, sys
from flows.triggers import run_batch
print(json.dumps(run_batch(sys.argv[1], providers=sys.argv[2])))
"""


@pytest.mark.slow
def test_run_batch_uses_the_managed_local_server_by_default(tmp_path: Path, providers_file: Path) -> None:
    """Without PREFECT_API_URL, run_batch fell back to Prefect's ephemeral mode: tracebacks on stderr at exit
    and most of the task history lost (PREFECT.md gotcha 1). It now reports to the local server `switchboard
    run` uses, starting it if needed, and every task run is on record there."""
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    port = free_port()
    dirs = {"data_dir": tmp_path / "home", "prefect_home": tmp_path / "prefect"}
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "SWITCHBOARD_PREFECT")}
    env.update(
        SWITCHBOARD_HOME=str(dirs["data_dir"]),
        PREFECT_HOME=str(dirs["prefect_home"]),
        SWITCHBOARD_PREFECT_PORT=str(port),
        SWITCHBOARD_DATABASE_URL=f"sqlite:///{tmp_path / 'ledger.db'}",
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", RUN_BATCH_SCRIPT, str(ROOT / "examples" / "pr-review.yaml"), str(providers_file)],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        result = json.loads(done.stdout)
        assert result["status"] == "completed" and result["totals"]["completed"] == 12
        for noise in ("Traceback", "Error flushing", "CancelledError", "Starting temporary server"):
            assert noise not in done.stderr, done.stderr[-3000:]
        info = server.server_status(port, **dirs)
        assert info.running and info.managed  # started in the background, and left running for the next run
        run = Ledger(url=env["SWITCHBOARD_DATABASE_URL"]).get_run(result["run_id"])
        assert run is not None and run.flow_run_id
        flow_runs = FlowRunFilter(id=FlowRunFilterId(any_=[UUID(run.flow_run_id)]))
        deadline = time.monotonic() + 60
        with SyncPrefectClient(info.api_url) as client:
            while True:  # the server records task runs from events, a moment after they happen
                task_runs = client.read_task_runs(flow_run_filter=flow_runs)
                completed = [t for t in task_runs if t.state is not None and t.state.is_completed()]
                if len(completed) >= 12 or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
        # The whole history: one completed task run per batch task (ephemeral mode kept 19-31 of 200).
        assert (len(task_runs), len(completed)) == (12, 12)
    finally:
        server.stop_server(port, **dirs)
