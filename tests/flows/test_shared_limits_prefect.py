"""Prefect's own distributed pieces with limits holding across them, as docs/prefect.md sets them up: the Prefect
server on PostgreSQL, two workers pulling runs of one deployment at once, and the Dask runner, all routing
against one provider limited to a number of requests an hour, the ledger on PostgreSQL."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from flows import server
from tests.conftest import postgres_url_or_skip
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
PREFECT = [sys.executable, "-m", "prefect"]
SWITCHBOARD = [sys.executable, "-m", "cli"]
pytestmark = pytest.mark.slow


def _run(command: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)
    assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A Prefect server on a PostgreSQL database of its own, the process-batch deployment on it, and a ledger
    schema of its own on PostgreSQL."""
    base = postgres_url_or_skip()
    tmp = tmp_path_factory.mktemp("prefect-pg")
    database = f"prefect_{uuid.uuid4().hex[:8]}"
    schema = f"ledger_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {database}"))
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    server_db = base.replace("postgresql+psycopg://", "postgresql+asyncpg://").rsplit("/", 1)[0] + f"/{database}"
    port = free_port()
    dirs = {"data_dir": tmp / "switchboard", "prefect_home": tmp / "prefect-home"}
    saved = os.environ.get("PREFECT_API_DATABASE_CONNECTION_URL")
    os.environ["PREFECT_API_DATABASE_CONNECTION_URL"] = server_db  # the server reads it from its environment
    try:
        info = server.start_server(port, **dirs, timeout=180)
    finally:
        if saved is None:
            os.environ.pop("PREFECT_API_DATABASE_CONNECTION_URL", None)
        else:
            os.environ["PREFECT_API_DATABASE_CONNECTION_URL"] = saved
    ledger_url = base + ("&" if "?" in base else "?") + f"options=-csearch_path%3D{schema}"
    env = dict(
        os.environ,
        PREFECT_HOME=str(dirs["prefect_home"]),
        PREFECT_API_URL=info.api_url,
        SWITCHBOARD_HOME=str(dirs["data_dir"]),
        SWITCHBOARD_DATABASE_URL=ledger_url,
    )
    env.pop("SWITCHBOARD_PROVIDERS", None)
    env.pop("SWITCHBOARD_PREFECT", None)
    try:
        _run([*PREFECT, "work-pool", "create", server.POOL_NAME, "--type", "process"], env)
        _run([*PREFECT, "--no-prompt", "deploy", "--name", "process-batch"], env)
        yield {"env": env, "api_url": info.api_url, "ledger_url": ledger_url, "tmp": tmp, "schema": schema}
    finally:
        server.stop_server(port, **dirs)
        with admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            conn.execute(text(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
        admin.dispose()


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


def _final_state(api_url: str, flow_run_id: str, timeout: float = 60) -> Any:
    from prefect.client.orchestration import SyncPrefectClient

    deadline = time.monotonic() + timeout
    with SyncPrefectClient(api_url) as client:
        while True:
            flow_run = client.read_flow_run(uuid.UUID(flow_run_id))
            if (flow_run.state and flow_run.state.is_final()) or time.monotonic() > deadline:
                return flow_run


def test_two_workers_pulling_one_deployment_share_one_limit(stack: dict[str, Any]) -> None:
    env, tmp = stack["env"], stack["tmp"]
    providers = _providers(tmp, "limited", 10)
    flow_runs = []
    for name in ("first", "second"):
        spec = _spec(tmp, name, 8)
        params = ["--param", f"spec={spec}", "--param", f"providers={providers}"]
        triggered = _run([*PREFECT, "deployment", "run", "process-batch/process-batch", *params], env)
        match = re.search(r"UUID: ([0-9a-f-]{36})", triggered.stdout)
        assert match, triggered.stdout
        flow_runs.append(match.group(1))
    # Two workers at once, each running one flow run at a time (--limit 1). Not --run-once: two such workers
    # polling together can both reach for the same run, and the loser exits, leaving the other run Late.
    command = [*PREFECT, "worker", "start", "--pool", server.POOL_NAME, "--limit", "1"]
    logs = [tmp / f"worker-{n}.log" for n in range(2)]
    workers = [
        subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
        )
        for log in logs
    ]
    try:
        states = [_final_state(stack["api_url"], f, timeout=300) for f in flow_runs]
    finally:
        for worker in workers:
            os.killpg(worker.pid, signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
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
