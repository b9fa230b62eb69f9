"""The Dask task runner (runner.kind: dask) runs a batch across worker processes, which rebuild the run's
runtime from the ledger and config: both modes complete every task once."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

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
    from flows.server import start_server, stop_server

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    home, prefect_home = tmp_path_factory.mktemp("home"), tmp_path_factory.mktemp("prefect")
    info = start_server(port, data_dir=home, prefect_home=prefect_home)
    yield {"PREFECT_API_URL": info.api_url, "PREFECT_HOME": str(prefect_home), "SWITCHBOARD_HOME": str(home)}
    stop_server(port, data_dir=home, prefect_home=prefect_home)


@pytest.mark.parametrize("mode", ["per_node", "chunked"])
def test_batch_runs_on_a_dask_cluster(server: dict[str, str], tmp_path: Path, mode: str) -> None:
    providers = tmp_path / "providers.yaml"
    providers.write_text("runner: {kind: dask, dask_workers: 2}\nproviders:\n  m: {type: local_mock, latency_ms: 5}\n")
    script = tmp_path / "run_dask.py"
    script.write_text(SCRIPT)
    env = {**os.environ, **server, "SWITCHBOARD_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}"}
    env.pop("SWITCHBOARD_PREFECT", None)
    done = subprocess.run(
        [sys.executable, str(script), str(providers), str(ROOT / "examples" / "pr-review.yaml"), mode],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-2:] == ["completed", "12"]
    db = sqlite3.connect(tmp_path / "ledger.db")
    assert db.execute("select count(*) from tasks where status = 'completed'").fetchone() == (12,)
    # every task ran once, in a worker process
    assert db.execute("select count(*), count(distinct task_id) from provider_usage").fetchone() == (12, 12)
