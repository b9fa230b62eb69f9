"""What-if replay: the recorded workload through the real engine against simulated providers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flows.nodes import run_nodes
from flows.runtime import close_runtime, open_runtime, start_run
from flows.simulate import load_workload, simulate
from flows.spec import parse_spec
from ledger import Ledger
from routing.config import parse_config

ROOT = Path(__file__).resolve().parents[2]
SPEC = {
    "name": "replayed",
    "team": "qa",
    "tasks": [
        {"id": "plan", "type": "code_analysis", "prompt": "plan the work"},
        *(
            {"id": f"review-{i}", "type": "code_review", "prompt": f"review part {i}", "depends_on": ["plan"]}
            for i in range(12)
        ),
        {"id": "sum", "type": "summarization", "prompt": "sum up", "depends_on": [f"review-{i}" for i in range(12)]},
    ],
}
RECORDED = {
    "providers": {
        "flaky": {"type": "local_mock", "priority": 1, "latency_ms": 0, "failure_rate": 1.0},
        "cheap": {
            "type": "local_mock",
            "priority": 2,
            "latency_ms": 0,
            "capabilities": ["code_review"],
            "prices": {"*": {"input": 0.1, "output": 0.2}},
        },
        "steady": {
            "type": "local_mock",
            "priority": 3,
            "latency_ms": 0,
            "prices": {"*": {"input": 2.0, "output": 8.0}},
        },
    }
}


def record_run(ledger: Ledger) -> str:
    """Run the batch for real (without Prefect: the same node code the flow's tasks run)."""
    spec = parse_spec(SPEC, "spec")
    config = parse_config(RECORDED, "recorded.yaml")
    run_id, _ = start_run(ledger, spec, config.strategy)
    runtime = open_runtime(spec, config, config.strategy, run_id=run_id, resumed=False, ledger=ledger)
    try:
        for layer in spec.layers():
            run_nodes(runtime, [t.id for t in layer])
    finally:
        close_runtime(run_id)
    return run_id


@pytest.fixture
def recorded(ledger_url: str) -> Ledger:
    ledger = Ledger(url=ledger_url)
    record_run(ledger)
    return ledger


def _window() -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    return now - timedelta(hours=1), now + timedelta(minutes=1)


def test_replay_under_the_same_config_reproduces_cost_and_provider_mix(recorded: Ledger) -> None:
    workload = load_workload(recorded, *_window())
    assert len(workload.items) == 14
    result = simulate(workload, parse_config(RECORDED, "same.yaml"))
    actual, predicted = result["actual"], result["predicted"]
    assert actual["provider_mix"] == {"cheap": 12, "steady": 2}
    # stated tolerance: the same provider mix, cost within 1%, the same success rate
    assert predicted["provider_mix"] == actual["provider_mix"]
    assert predicted["cost_usd"] == pytest.approx(actual["cost_usd"], rel=0.01)
    assert predicted["task_success_rate"] == actual["task_success_rate"] == 1.0
    assert predicted["failovers"] >= 1


def test_replay_under_another_config_predicts_the_change(recorded: Ledger) -> None:
    workload = load_workload(recorded, *_window())
    other = {
        "providers": {
            "steady": {"type": "local_mock", "priority": 1, "prices": {"*": {"input": 2.0, "output": 8.0}}},
            "cheap": {
                "type": "local_mock",
                "priority": 2,
                "capabilities": ["code_review"],
                "prices": {"*": {"input": 0.1, "output": 0.2}},
            },
        }
    }
    result = simulate(workload, parse_config(other, "other.yaml"))
    predicted, actual = result["predicted"], result["actual"]
    assert predicted["provider_mix"] == {"steady": 14}
    # every review now on the expensive provider, priced from the recorded token counts
    expected = sum((i.usage.input * 2.0 + i.usage.output * 8.0) / 1e6 for i in workload.items)
    assert predicted["cost_usd"] == pytest.approx(expected) and expected > actual["cost_usd"]
    assert predicted["failovers"] == 0
    cheaper = simulate(workload, parse_config(other, "other.yaml"), strategy="cost_based")
    assert cheaper["predicted"]["provider_mix"] == {"cheap": 12, "steady": 2}


def test_replay_predicts_when_a_limit_runs_out(recorded: Ledger) -> None:
    workload = load_workload(recorded, *_window())
    limited = {
        "switch_threshold": 0.5,
        "providers": {
            "cheap": {
                "type": "local_mock",
                "priority": 1,
                "capabilities": ["code_review"],
                "limits": {"requests_per_hour": 5},
            },
            "steady": {"type": "local_mock", "priority": 2},
        },
    }
    result = simulate(workload, parse_config(limited, "limited.yaml"))
    # from 3 of 5 requests (past switch_threshold 0.5) the engine prefers the other provider
    assert result["predicted"]["provider_mix"]["cheap"] == 3
    assert any(
        e["kind"] == "quota.forecast_crossed" and e["provider"] == "cheap" for e in result["predicted"]["quota_events"]
    )


@pytest.mark.slow
def test_simulate_command_prints_one_json_object(recorded: Ledger, ledger_url: str, tmp_path: Path) -> None:
    providers = tmp_path / "same.json"
    providers.write_text(json.dumps(RECORDED))
    env = dict(os.environ, SWITCHBOARD_DATABASE_URL=ledger_url)
    done = subprocess.run(
        [sys.executable, "-m", "flows", "simulate", "--since", "1h", "--providers", str(providers), "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["predicted"]["provider_mix"] == result["actual"]["provider_mix"]
    bad = subprocess.run(
        [sys.executable, "-m", "flows", "simulate", "--since", "yesterday", "--providers", str(providers)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert bad.returncode == 2 and "--since" in bad.stderr
