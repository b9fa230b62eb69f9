"""The Dask task runner (runner.kind: dask) runs a batch across worker processes, which rebuild the run's
runtime from the ledger and config: both modes complete every task once, on loopback only, quietly."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.flows.prefect_kit import prefect_server

psutil = pytest.importorskip("psutil")  # a dependency of distributed
pytest.importorskip("prefect_dask")
pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys
if __name__ == "__main__":  # Dask starts worker processes that import this file
    from flows.batch import run_batch_flow
    from routing.config import load_config
    config = load_config(sys.argv[1])
    result = run_batch_flow(config, spec=sys.argv[2], providers=sys.argv[1], fresh=True, mode=sys.argv[3])
    print(result["status"], result["totals"]["completed"])
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    with prefect_server(tmp_path_factory.mktemp("dask-server")) as running:
        yield {
            "PREFECT_API_URL": running.api_url,
            "PREFECT_HOME": str(running.prefect_home),
            "SWITCHBOARD_HOME": str(running.data_dir),
        }


@pytest.mark.parametrize("mode", ["per_node", "chunked"])
def test_batch_runs_on_a_dask_cluster(server: dict[str, str], tmp_path: Path, mode: str) -> None:
    providers = tmp_path / "providers.yaml"
    providers.write_text("runner: {kind: dask, dask_workers: 2}\nproviders:\n  m: {type: local_mock, latency_ms: 5}\n")
    script = tmp_path / "run_dask.py"
    script.write_text(SCRIPT)
    env = {**os.environ, **server, "SWITCHBOARD_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}"}
    env.pop("SWITCHBOARD_PREFECT", None)
    env["PREFECT_LOGGING_LEVEL"] = "WARNING"  # what `switchboard run` sets without --verbose
    proc = subprocess.Popen(
        [sys.executable, str(script), str(providers), str(ROOT / "examples" / "pr-review.yaml"), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    listening = _listening_while_running(proc)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    assert stdout.split()[-2:] == ["completed", "12"]
    # The cluster served something (scheduler, nannies, workers), all of it on loopback and none on 8787, the
    # dashboard's port (which `dashboard_address: None` did not free).
    assert listening, "saw no listening socket of the run's processes"
    assert {host for host, _ in listening} == {"127.0.0.1"}, listening
    assert 8787 not in {port for _, port in listening}, listening
    # distributed's INFO lines (~33 a run) stay off stderr at Prefect's WARNING level.
    assert not [line for line in stderr.splitlines() if "distributed." in line and "INFO" in line], stderr[-3000:]
    db = sqlite3.connect(tmp_path / "ledger.db")
    assert db.execute("select count(*) from tasks where status = 'completed'").fetchone() == (12,)
    # every task ran once, in a worker process
    assert db.execute("select count(*), count(distinct task_id) from provider_usage").fetchone() == (12, 12)


def _listening_while_running(proc: subprocess.Popen[str]) -> set[tuple[str, int]]:
    """(host, port) of every TCP socket the process and its children listened on, sampled until it exits."""
    seen: set[tuple[str, int]] = set()
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            break
        for member in family:
            try:
                connections = member.net_connections(kind="tcp")
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            seen |= {(c.laddr.ip, c.laddr.port) for c in connections if c.status == psutil.CONN_LISTEN}
        time.sleep(0.2)
    return seen
