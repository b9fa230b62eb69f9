"""The managed local Prefect server: `switchboard server start|status|stop` against a real server on a free port."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from flows import server
from providers import group_members
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, Path]:
    return {"data_dir": tmp_path / "switchboard", "prefect_home": tmp_path / "prefect-home"}


def test_urls_and_port_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(server.PORT_ENV, raising=False)
    assert server.api_url() == "http://127.0.0.1:4200/api"
    monkeypatch.setenv(server.PORT_ENV, "4321")
    assert server.resolve_port() == 4321
    assert server.ui_url_for_flow_run("abc") == "http://127.0.0.1:4321/runs/flow-run/abc"
    assert server.ui_url_for_flow_run("abc", port=5000) == "http://127.0.0.1:5000/runs/flow-run/abc"


def test_server_env_points_the_ui_at_a_non_default_port(dirs: dict[str, Path]) -> None:
    other = server._server_env(server.server_paths(4300, **dirs))
    assert other["PREFECT_SERVER_UI_API_URL"] == other["PREFECT_UI_API_URL"] == "http://127.0.0.1:4300/api"
    assert other["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert other["PREFECT_HOME"] == str(dirs["prefect_home"])
    default = server._server_env(server.server_paths(4200, **dirs))
    assert default.get("PREFECT_SERVER_UI_API_URL") == os.environ.get("PREFECT_SERVER_UI_API_URL")


def test_status_and_stop_with_nothing_running(dirs: dict[str, Path]) -> None:
    port = free_port()
    info = server.server_status(port, **dirs)
    assert not info.running and not info.managed and info.pid is None and info.worker_pid is None
    assert info.server_log == dirs["data_dir"] / "prefect-server.log"
    assert not server.stop_server(port, **dirs).running


def test_start_refuses_a_port_held_by_something_else(dirs: dict[str, Path]) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(server.ServerError, match="not a Prefect server"):
            server.start_server(port, **dirs)
    assert not (dirs["data_dir"] / "prefect-server.pid").exists()


@pytest.fixture
def cli_env(dirs: dict[str, Path]) -> Iterator[dict[str, str]]:
    port = free_port()
    env = dict(
        os.environ,
        SWITCHBOARD_HOME=str(dirs["data_dir"]),
        PREFECT_HOME=str(dirs["prefect_home"]),
        SWITCHBOARD_PREFECT_PORT=str(port),
    )
    env.pop("PREFECT_API_URL", None)
    yield env
    server.stop_server(port, **dirs)  # whatever the test did, leave nothing running


def switchboard(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", "server", *args], capture_output=True, text=True, env=env, timeout=180, cwd=ROOT
    )


@pytest.mark.slow
def test_start_status_stop_a_real_server_and_worker(cli_env: dict[str, str], dirs: dict[str, Path]) -> None:
    port = int(cli_env["SWITCHBOARD_PREFECT_PORT"])
    started = switchboard("start", "--json", env=cli_env)
    assert started.returncode == 0, started.stderr[-3000:]
    info = json.loads(started.stdout)
    assert info["running"] and info["managed"] and info["worker_pid"]
    assert info["api_url"] == f"http://127.0.0.1:{port}/api" and info["startup_s"] > 0
    print(f"server start-up: {info['startup_s']:.1f} s")  # reported with -s
    pid, worker_pid = info["pid"], info["worker_pid"]
    # Detached: its own session, so Ctrl-C in the terminal that started it does not reach it.
    assert os.getsid(pid) == pid and os.getsid(worker_pid) == worker_pid

    status = switchboard("status", "--json", env=cli_env)
    assert status.returncode == 0 and json.loads(status.stdout)["pid"] == pid
    text = switchboard("status", env=cli_env)
    assert f"pid {pid}" in text.stdout and f"http://127.0.0.1:{port}" in text.stdout

    again = server.start_server(port, with_worker=True, **dirs)  # idempotent: nothing new is spawned
    assert (again.pid, again.worker_pid, again.startup_s) == (pid, worker_pid, None)
    assert server.ensure_local_server(port, **dirs) == f"http://127.0.0.1:{port}/api"
    # The UI bundle asks /ui-settings where the API is; on a port other than 4200 it must be this one.
    ui_settings = httpx.get(f"http://127.0.0.1:{port}/ui-settings", trust_env=False, timeout=10).json()
    assert ui_settings["api_url"] == f"http://127.0.0.1:{port}/api"
    assert (dirs["data_dir"] / "prefect-server.log").stat().st_size > 0
    assert "Worker" in (dirs["data_dir"] / "prefect-worker.log").read_text()

    stopped = switchboard("stop", env=cli_env)
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped worker and server" in stopped.stdout
    assert group_members(pid) == [] and group_members(worker_pid) == []  # no orphans
    after = switchboard("status", "--json", env=cli_env)
    assert after.returncode == 1 and not json.loads(after.stdout)["running"]
    assert not (dirs["data_dir"] / "prefect-server.pid").exists()


@pytest.mark.slow
def test_ensure_local_server_starts_one_in_the_background(dirs: dict[str, Path]) -> None:
    port = free_port()
    try:
        url = server.ensure_local_server(port, **dirs)
        assert url == f"http://127.0.0.1:{port}/api" and server.is_healthy(port)
        info = server.server_status(port, **dirs)
        assert info.managed and info.worker_pid is None
        # A server killed behind our back leaves a stale pid file; the next start replaces it.
        os.killpg(info.pid, signal.SIGKILL)  # type: ignore[arg-type]
        deadline = time.monotonic() + 10
        while server.server_status(port, **dirs).managed and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not server.server_status(port, **dirs).managed
    finally:
        server.stop_server(port, **dirs)
    assert group_members(info.pid) == []  # type: ignore[arg-type]


# --- task runners: the Dask runner needs a Prefect server (flows/task_runners.py) -------------------------


def test_thread_runner_is_bounded_by_config() -> None:
    from prefect.task_runners import ThreadPoolTaskRunner

    from flows.task_runners import make_task_runner
    from routing import RunnerSettings

    runner = make_task_runner(RunnerSettings(max_workers=3))
    assert isinstance(runner, ThreadPoolTaskRunner) and runner._max_workers == 3
    assert make_task_runner(RunnerSettings())._max_workers == 16  # never Prefect's unbounded default


def test_dask_runner_without_prefect_dask_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.task_runners import TaskRunnerError, make_task_runner
    from routing import RunnerSettings

    monkeypatch.setitem(sys.modules, "prefect_dask", None)  # import prefect_dask -> ImportError
    with pytest.raises(TaskRunnerError, match=r"pip install 'switchboard\[dask\]'"):
        make_task_runner(RunnerSettings(kind="dask"))


class _FakeDaskTaskRunner:
    def __init__(self, **kwargs: object) -> None:
        self.kwargs = kwargs


def test_dask_runner_needs_a_server_and_stays_on_loopback(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import types

    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.task_runners import TaskRunnerError, make_task_runner
    from routing import RunnerSettings

    monkeypatch.setitem(sys.modules, "prefect_dask", types.SimpleNamespace(DaskTaskRunner=_FakeDaskTaskRunner))
    monkeypatch.delenv("DASK_TEMPORARY_DIRECTORY", raising=False)
    settings = RunnerSettings(kind="dask", dask_workers=3)
    with (
        temporary_settings(restore_defaults={PREFECT_API_URL}),
        pytest.raises(TaskRunnerError, match="PREFECT_API_URL"),
    ):
        make_task_runner(settings, scratch=tmp_path)
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:4200/api"}):
        local = make_task_runner(settings, scratch=tmp_path)
        remote = make_task_runner(RunnerSettings(kind="dask", dask_address="tcp://127.0.0.1:8786"), scratch=tmp_path)
    cluster = local.kwargs["cluster_kwargs"]  # type: ignore[attr-defined]
    assert local.kwargs["cluster_class"] == "distributed.LocalCluster"  # type: ignore[attr-defined]
    assert cluster["n_workers"] == 3 and cluster["threads_per_worker"] == 1 and cluster["host"] == "127.0.0.1"
    # The scheduler always serves HTTP: on loopback, on a port the OS picks (never 8787), without the dashboard.
    assert cluster["dashboard_address"] == "127.0.0.1:0" and cluster["scheduler_kwargs"] == {"dashboard": False}
    assert cluster["local_directory"].startswith(str(tmp_path))
    assert os.environ["DASK_TEMPORARY_DIRECTORY"].startswith(str(tmp_path))
    assert remote.kwargs == {"address": "tcp://127.0.0.1:8786"}  # type: ignore[attr-defined]
