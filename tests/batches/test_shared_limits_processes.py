"""Acceptance: 4 processes route 400 tasks together against limits that add up to 300 requests (or a day budget
that runs out first); no provider gets more than its limit, the budget is never passed, the other tasks fail
with a quota or budget reason, and the ledger's totals are exact. On SQLite (the processes of one machine) and
PostgreSQL.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from ledger import UTC_DAY, LimitStore, create_ledger_engine

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = 4
TASKS_EACH = 100
pytestmark = pytest.mark.slow

LIMITS = {"a": 100, "b": 120, "c": 80}
# $1 per thousand tokens: each call is estimated at $0.041 and costs $0.029 (see test_money_guards).
PRICES = {"*": {"input": 1000.0, "output": 1000.0}}
DAY_CAP = 5.0


def _write(path: Path, doc: dict[str, Any]) -> str:
    path.write_text(json.dumps(doc))
    return str(path)


def _run_processes(url: str, tmp_path: Path, providers: dict[str, Any]) -> list[dict[str, Any]]:
    providers_file = _write(tmp_path / "providers.json", providers)
    go = tmp_path / "go"
    procs = []
    for p in range(PROCESSES):
        spec = {
            "name": f"worker-{p}",
            "defaults": {"max_attempts": 3},
            "tasks": [
                {"id": f"w{p}-t{i}", "type": "code_review", "prompt": "p", "max_output_tokens": 40}
                for i in range(TASKS_EACH)
            ],
        }
        spec_file = _write(tmp_path / f"spec{p}.json", spec)
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "tests.batches.shared_worker", url, spec_file, providers_file, str(go)],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    time.sleep(4.0)  # every process has built its runtime and waits for the go file
    go.touch()
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err[-3000:]
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    return outputs


def _ledger_rows(url: str, sql: str) -> list[Any]:
    engine = create_ledger_engine(url, migrate_schema=False)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql)).all())
    finally:
        engine.dispose()


def test_four_processes_never_pass_request_limits_that_add_up_to_300(either_database_url: str, tmp_path: Path) -> None:
    providers = {
        "reserve_for_critical": 0,
        "providers": {
            name: {"type": "local_mock", "latency_ms": 2, "priority": i + 1, "limits": {"requests_per_hour": limit}}
            for i, (name, limit) in enumerate(LIMITS.items())
        },
    }
    outputs = _run_processes(either_database_url, tmp_path, providers)
    statuses = Counter(status for out in outputs for _, status, _ in out["tasks"])
    assert statuses == {"completed": 300, "failed": 100}
    for out in outputs:
        for task_id, status, error in out["tasks"]:
            if status == "failed":
                assert error.startswith("every provider is out of quota or rate limited now"), (task_id, error)
                assert "quota: requests_per_hour" in error, (task_id, error)
    assert sum(out["quota_failures"] for out in outputs) == 100  # the run summaries count them apart
    calls = dict(
        _ledger_rows(either_database_url, "select provider_id, count(*) from provider_usage group by provider_id")
    )
    assert calls == LIMITS  # each provider exactly at its limit, never past it
    outcomes = _ledger_rows(either_database_url, "select distinct outcome from provider_usage")
    assert outcomes == [("success",)]
    done = _ledger_rows(either_database_url, "select count(*) from tasks where status = 'completed'")
    assert done == [(300,)]
    # Nothing left in flight, and the shared counters agree with the ledger.
    engine = create_ledger_engine(either_database_url, migrate_schema=False)
    store = LimitStore(engine, owner="check")
    assert store.in_flight() == 0
    engine.dispose()


def test_four_processes_never_pass_a_day_budget_and_spend_it(either_database_url: str, tmp_path: Path) -> None:
    providers = {
        "budget": {"max_cost_usd_per_day": DAY_CAP},
        "providers": {"m": {"type": "local_mock", "latency_ms": 2, "prices": PRICES, "max_concurrency": 16}},
    }
    outputs = _run_processes(either_database_url, tmp_path, providers)
    statuses = Counter(status for out in outputs for _, status, _ in out["tasks"])
    [(spent, calls)] = _ledger_rows(either_database_url, "select sum(cost_usd), count(*) from provider_usage")
    assert spent <= DAY_CAP
    # Calls held back by others' estimates waited for them to settle: the budget is used up to one estimate.
    assert spent > DAY_CAP - 0.041
    assert statuses["completed"] == calls == round(spent / 0.029)
    assert statuses["failed"] == 400 - calls
    for out in outputs:
        for task_id, status, error in out["tasks"]:
            if status == "failed":
                assert "budget: day would reach" in (error or ""), (task_id, error)
    assert sum(out["quota_failures"] for out in outputs) == 0  # a budget is not a quota
    engine = create_ledger_engine(either_database_url, migrate_schema=False)
    store = LimitStore(engine, owner="check")
    assert store.in_flight() == 0
    requests, _, cost, reserved_requests, _, reserved_cost = store.usage("budget:day", UTC_DAY)
    assert (requests, reserved_requests, reserved_cost) == (calls, 0, pytest.approx(0, abs=1e-9))
    assert cost == pytest.approx(spent)
    engine.dispose()
