"""Prefect's own distributed pieces with limits holding across them, as docs/prefect.md sets them up: the Prefect
server on PostgreSQL, two workers pulling runs of one deployment at once, and the Dask runner, all routing
against one provider limited to a number of requests an hour, the ledger on PostgreSQL."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, make_url, text

from tests.conftest import postgres_database_url, postgres_schema_url, postgres_url_or_skip
from tests.flows.prefect_kit import (
    PREFECT,
    ROOT,
    SWITCHBOARD,
    final_flow_run,
    prefect_stack,
    prefect_worker,
    run_ok,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A Prefect server on a PostgreSQL database of its own, the process-batch deployment on it, and a ledger
    schema of its own on PostgreSQL."""
    base = postgres_url_or_skip()
    tmp = tmp_path_factory.mktemp("prefect-pg")
    with postgres_database_url(base) as server_db, postgres_schema_url(base) as ledger_url:
        server_db = make_url(server_db).set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
        with prefect_stack(tmp, ledger_url=ledger_url, server_database_url=server_db, timeout=180) as prefect:
            yield {"env": prefect.env, "api_url": prefect.api_url, "ledger_url": ledger_url, "tmp": tmp}


def _providers(tmp: Path, name: str, limit: int, runner: str = "") -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(
        "reserve_for_critical: 0\n"
        + runner
        + f"providers:\n  {name}: {{type: local_mock, latency_ms: 20, limits: {{requests_per_hour: {limit}}}}}\n"
    )
    return path


def _spec(tmp: Path, name: str, n: int) -> Path:
    path = tmp / f"{name}.yaml"
    tasks = "".join(f"  - {{id: {name}-{i}, type: code_review, prompt: review {i}}}\n" for i in range(n))
    path.write_text(f"name: {name}\ndefaults: {{max_attempts: 1}}\ntasks:\n{tasks}")
    return path


def _calls(ledger_url: str, provider: str) -> int:
    engine = create_engine(ledger_url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    text("select count(*) from provider_usage where provider_id = :p"), {"p": provider}
                ).scalar_one()
            )
    finally:
        engine.dispose()


def test_two_workers_pulling_one_deployment_share_one_limit(stack: dict[str, Any]) -> None:
    env, tmp = stack["env"], stack["tmp"]
    providers = _providers(tmp, "limited", 10)
    flow_runs = []
    for name in ("first", "second"):
        spec = _spec(tmp, name, 8)
        params = ["--param", f"spec={spec}", "--param", f"providers={providers}"]
        triggered = run_ok([*PREFECT, "deployment", "run", "process-batch/process-batch", *params], env)
        match = re.search(r"UUID: ([0-9a-f-]{36})", triggered.stdout)
        assert match, triggered.stdout
        flow_runs.append(match.group(1))
    # Two workers at once, each running one flow run at a time (--limit 1). Not --run-once: two such workers
    # polling together can both reach for the same run, and the loser exits, leaving the other run Late.
    logs = [tmp / f"worker-{n}.log" for n in range(2)]
    with contextlib.ExitStack() as workers:
        for log in logs:
            workers.enter_context(prefect_worker(env, log, "--limit", "1"))
        states = [final_flow_run(stack["api_url"], f, timeout=300) for f in flow_runs]
    worker_logs = "\n".join(log.read_text()[-2000:] for log in logs)
    assert all(s.state.is_final() for s in states), ([s.state for s in states], worker_logs)
    # 16 tasks against 10 requests an hour, from two processes: exactly 10 calls, never more.
    assert _calls(stack["ledger_url"], "limited") == 10


def test_the_dask_runner_shares_the_limit_across_its_worker_processes(stack: dict[str, Any]) -> None:
    env, tmp = stack["env"], stack["tmp"]
    providers = _providers(tmp, "dasked", 5, runner="runner: {kind: dask, dask_workers: 2}\n")
    spec = _spec(tmp, "dask", 8)
    result = subprocess.run(
        [*SWITCHBOARD, "run", str(spec), "--providers", str(providers), "--mode", "per_node", "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )
    assert result.returncode == 1, result.stderr[-3000:]  # some tasks fail for quota
    assert _calls(stack["ledger_url"], "dasked") == 5

    totals = json.loads(result.stdout)["totals"]
    assert (totals["completed"], totals["failed"], totals["quota_failures"]) == (5, 3, 3)
