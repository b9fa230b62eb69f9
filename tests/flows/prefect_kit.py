"""Helpers for tests that run batches on a Prefect server of the module's own (free port, temporary Prefect home):
the server, the project's deployments on it, a worker on its pool, and waiting for a flow run's end."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from flows import server
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
PREFECT = [sys.executable, "-m", "prefect"]
SWITCHBOARD = [sys.executable, "-m", "cli"]
SERVER_DATABASE_ENV = "PREFECT_API_DATABASE_CONNECTION_URL"


def run_ok(command: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run a command from the repository root; fail the test with its output's tail unless it exits 0."""
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)
    assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@dataclass(frozen=True)
class PrefectServer:
    """A running server; its state (pid files, logs) under `data_dir`, its Prefect settings under `prefect_home`."""

    api_url: str
    data_dir: Path
    prefect_home: Path


@contextlib.contextmanager
def prefect_server(
    tmp: Path, *, server_database_url: str | None = None, timeout: float = server.STARTUP_TIMEOUT_S
) -> Iterator[PrefectServer]:
    """A Prefect server on a free port under `tmp`, stopped afterwards. It keeps its own state in SQLite under
    `tmp`, or in `server_database_url` (a PostgreSQL database, for several workers at once)."""
    port = free_port()
    dirs = {"data_dir": tmp / "switchboard", "prefect_home": tmp / "prefect-home"}
    saved = os.environ.get(SERVER_DATABASE_ENV)
    if server_database_url is not None:
        os.environ[SERVER_DATABASE_ENV] = server_database_url  # the server reads it from its environment
    try:
        info = server.start_server(port, **dirs, timeout=timeout)
    finally:
        if saved is None:
            os.environ.pop(SERVER_DATABASE_ENV, None)
        else:
            os.environ[SERVER_DATABASE_ENV] = saved
    try:
        print(f"server start-up {info.startup_s:.1f} s")
        yield PrefectServer(api_url=info.api_url, **dirs)
    finally:
        server.stop_server(port, **dirs)


@dataclass(frozen=True)
class PrefectStack:
    """A running server with deployments on it; `env` is for the processes that use it (CLI, workers)."""

    env: dict[str, str]
    api_url: str


@contextlib.contextmanager
def prefect_stack(
    tmp: Path,
    *,
    ledger_url: str,
    deploy: Sequence[str] = ("--name", "process-batch"),
    server_database_url: str | None = None,
    timeout: float = server.STARTUP_TIMEOUT_S,
) -> Iterator[PrefectStack]:
    """`prefect_server` with the `switchboard` process pool and `prefect deploy <deploy>` on it; its processes
    write to `ledger_url`."""
    with prefect_server(tmp, server_database_url=server_database_url, timeout=timeout) as running:
        env = dict(
            os.environ,
            PREFECT_HOME=str(running.prefect_home),
            PREFECT_API_URL=running.api_url,
            SWITCHBOARD_HOME=str(running.data_dir),
            SWITCHBOARD_DATABASE_URL=ledger_url,
        )
        env.pop("SWITCHBOARD_PROVIDERS", None)
        # PREFECT_API_URL names the server, which the ephemeral mode the session sets would otherwise refuse for
        # the Dask runner; with the URL set it changes nothing else.
        env.pop(server.PREFECT_MODE_ENV, None)
        began = time.monotonic()
        run_ok([*PREFECT, "work-pool", "create", server.POOL_NAME, "--type", "process"], env)  # as docs/prefect.md
        run_ok([*PREFECT, "--no-prompt", "deploy", *deploy], env)
        print(f"deploy {time.monotonic() - began:.1f} s")
        yield PrefectStack(env=env, api_url=running.api_url)


@contextlib.contextmanager
def prefect_worker(env: dict[str, str], log: Path, *options: str) -> Iterator[subprocess.Popen[str]]:
    """A long-running worker on the `switchboard` pool (its own process group, output in `log`, `options` added
    to `prefect worker start`); stopped with SIGTERM afterwards, SIGKILL if it lingers."""
    with log.open("w") as out:
        worker = subprocess.Popen(
            [*PREFECT, "worker", "start", "--pool", server.POOL_NAME, *options],
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=ROOT,
            start_new_session=True,
        )
        try:
            yield worker
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)


def prefect_client(api_url: str) -> Any:
    from prefect.client.orchestration import SyncPrefectClient

    return SyncPrefectClient(api_url)


def final_flow_run(api_url: str, flow_run_id: str, timeout: float) -> Any:
    """The flow run once its state is final, or as it is when `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    with prefect_client(api_url) as client:
        while True:
            flow_run = client.read_flow_run(UUID(flow_run_id))
            if (flow_run.state and flow_run.state.is_final()) or time.monotonic() > deadline:
                return flow_run
            time.sleep(0.5)


__all__ = [
    "PREFECT",
    "ROOT",
    "SWITCHBOARD",
    "PrefectServer",
    "PrefectStack",
    "final_flow_run",
    "prefect_client",
    "prefect_server",
    "prefect_stack",
    "prefect_worker",
    "run_ok",
]
